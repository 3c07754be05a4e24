// Fuzzing tidepool-cni with modest run counts; `npm run fuzz` runs the same properties with large ones.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { buildCni } from '../../scripts/build-cni.ts';
import { parserProperty, pluginProperty, processProperty, recordingAnswer } from '../fuzz/cni.ts';
import { assertNoFailure, fuzz } from '../fuzz/run.ts';
import { startFakeAgent, type FakeAgent } from './cni-fake-agent.ts';

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
