// Fuzzing tidepool-cni with modest run counts; `npm run fuzz` runs the same properties with large ones.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCni } from '../../scripts/build-cni.ts';
import { runCni } from '../../src/cni/plugin.ts';
import { parserProperty, pluginProperty, processProperty, recordingAnswer } from '../fuzz/cni.ts';
import { assertNoFailure, fuzz } from '../fuzz/run.ts';
import { recordingCalls, startFakeAgent, type FakeAgent } from './cni-fake-agent.ts';

let dir: string;
let agent: FakeAgent;
let bundle: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tidepool-fuzz-cni-'));
  agent = await startFakeAgent(dir, recordingAnswer);
  bundle = await buildCni();
}, 60_000);
afterAll(async () => {
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fuzz: tidepool-cni', () => {
  it('parses any CNI_* environment and stdin into an invocation or a spec-shaped error', async () => {
    assertNoFailure(await fuzz('cni-parser', parserProperty(), 2000));
  });

  it('in-process: a rejected invocation prints a spec-shaped error and never reaches the agent', async () => {
    assertNoFailure(await fuzz('cni-plugin', pluginProperty(agent, path.join(dir, 'spool')), 500));
  });

  it('as a process: exits 0 with a result or 1 with a spec-shaped error, never a crash', async () => {
    assertNoFailure(await fuzz('cni-process', processProperty(bundle, agent, path.join(dir, 'spool')), 25));
  }, 60_000);
});

describe('fuzz regressions: tidepool-cni', () => {
  it('refuses a K8S_POD_NAMESPACE that is no namespace name (NUL) with code 4, and sends the agent nothing', async () => {
    agent.calls.length = 0;
    const env = {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c0ffee',
      CNI_NETNS: '/var/run/netns/cni-1',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=\u0000;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=uid-1',
    };
    const stdin = JSON.stringify({ cniVersion: '0.3.1', name: 'underlay', ipam: { type: 'tidepool', agent_socket: agent.socketPath, spool_dir: path.join(dir, 'spool') } });
    const output = await runCni(env, stdin, recordingCalls(recordingAnswer, agent.calls));
    expect(output.exitCode).toBe(1);
    expect(JSON.parse(output.stdout)).toMatchObject({ cniVersion: '0.3.1', code: 4, msg: expect.stringMatching(/^CNI_ARGS K8S_POD_NAMESPACE "\\u0000" is not a Kubernetes namespace name/) as unknown });
    expect(agent.calls).toEqual([]);
  });
});
