// Fuzzing the node agent's socket API with modest run counts; `npm run fuzz` runs the same property with large ones.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';
import { serveAgent } from '../../src/agent/server.ts';
import { AGENT_PATHS } from '../../src/cni/agent-api.ts';
import { agentProperty, lifecycleWorkflowIds, poolSnapshot, requestAgent, sideEffectProblems, startAgentUnderFuzz, type AgentLedger, type AgentUnderFuzz } from '../fuzz/agent.ts';
import { assertNoFailure, fuzz } from '../fuzz/run.ts';
import { stack, temporalClient } from '../harness/cluster.ts';

describe('fuzz: the agent socket API', () => {
  let agent: AgentUnderFuzz;
  beforeAll(async () => {
    agent = await startAgentUnderFuzz(stack());
  });
  afterAll(() => agent.stop());

  it('the socket is mode 0600 in a directory only its owner can enter', () => {
    expect(statSync(agent.socketPath).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(agent.socketPath)).mode & 0o077).toBe(0);
  });

  it('answers every request with 200 or a clear 4xx; a refused request writes no pool and starts no lifecycle', async () => {
    const ledger: AgentLedger = { refused: new Set(), accepted: new Set() };
    const before = await poolSnapshot(agent.tidepool);
    assertNoFailure(await fuzz('agent-socket', agentProperty(agent, ledger), 150));
    expect(sideEffectProblems(ledger, await lifecycleWorkflowIds(agent), before, await poolSnapshot(agent.tidepool))).toEqual([]);
    expect(ledger.refused.size).toBeGreaterThan(0);
    expect(agent.agentProcess.exitCode).toBeNull();
  });

  it('regression: answers a body over 64 KiB with 413 and a CNI error instead of dropping the connection', async () => {
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify({ padding: 'x'.repeat(70_000) }));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ code: 4, msg: 'request body is larger than 65536 bytes' });
  });

  it('regression: refuses a CHECK whose ips is not a list with code 4 before it asks Temporal', async () => {
    const body = { containerID: 'c0ffee', ifName: 'eth0', podNamespace: 'fuzz-ns', podName: 'check-ips', podUID: 'uid-1', ips: '10.0.0.1/24' };
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.CHECK, JSON.stringify(body));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({ code: 4, msg: '"ips" must be a list of addresses in CIDR notation, got "10.0.0.1/24"' });
  });

  it('regression: refuses a pod name Kubernetes cannot have before it names a lifecycle', async () => {
    const body = { containerID: 'c0ffee', ifName: 'eth0', podNamespace: 'fuzz-ns', podName: 'a/b', podUID: 'uid-1', netns: '/var/run/netns/x' };
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify(body));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 4, msg: expect.stringMatching(/^"podName" "a\/b" is not a Kubernetes pod name/) as unknown });
    expect([...(await lifecycleWorkflowIds(agent))].filter((id) => id.startsWith('pod-ip/fuzz-ns/a/'))).toEqual([]);
  });
});

describe('the agent socket API when Temporal does not answer in time', () => {
  it('regression: a CHECK whose query times out answers code 11 (try again later), not 500', async () => {
    const { client, close } = await temporalClient();
    const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-agent-deadline-'));
    const socketPath = path.join(dir, 'agent.sock');
    // A deadline of 1 ms: the query to Temporal fails with gRPC DEADLINE_EXCEEDED, as it does under load.
    const agent = createAgent({ client, temporalAddress: stack().temporalAddress, nodeName: '', addTimeoutMs: 1, delTimeoutMs: 1, spoolDir: path.join(dir, 'spool') });
    const server = await serveAgent(agent, socketPath);
    try {
      const body = { containerID: 'c0ffee', ifName: 'eth0', podNamespace: 'fuzz-ns', podName: 'deadline', podUID: 'uid-1', ips: [] };
      const answer = await requestAgent(socketPath, 'POST', AGENT_PATHS.CHECK, JSON.stringify(body));
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ code: 11, msg: 'Temporal did not answer in time: Failed to query Workflow', details: expect.stringMatching(/DEADLINE_EXCEEDED/) as unknown });
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
