// Fuzzing the node agent's socket API with modest run counts; `npm run fuzz` runs the same property with large ones.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';
import { serveAgent } from '../../src/agent/server.ts';
import { AGENT_INVOKE_PATH, AGENT_PATHS } from '../../src/contract/agent-api.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
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

  it('answers an invocation envelope that is not {"env", "stdin"} with 400 and code 4, and a refused invocation with what to print', async () => {
    for (const [body, msg] of [
      ['[]', 'the request body must be a JSON object {"env", "stdin"}'],
      [JSON.stringify({ env: {} }), '"stdin" must be a string'],
      [JSON.stringify({ env: { CNI_COMMAND: 1 }, stdin: '' }), '"env" must be an object of strings'],
    ] as const) {
      const answer = await requestAgent(agent.socketPath, 'POST', AGENT_INVOKE_PATH, body);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toEqual({ code: 4, msg });
    }
    const refused = await requestAgent(agent.socketPath, 'POST', AGENT_INVOKE_PATH, JSON.stringify({ env: { CNI_COMMAND: 'ADD' }, stdin: '{' }));
    expect(refused.status).toBe(200);
    const output = JSON.parse(refused.body) as { stdout: string; stderr: string; exitCode: number };
    expect(output).toMatchObject({ stderr: '', exitCode: 1 });
    expect(JSON.parse(output.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 6, msg: 'the network configuration on stdin is not valid JSON' });
  });

  it('regression: answers a body over 64 KiB with 413 and a CNI error instead of dropping the connection', async () => {
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify({ padding: 'x'.repeat(70_000) }));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ code: 4, msg: 'request body is larger than 65536 bytes' });
  });

  it('regression: answers a GET with a 100 KiB body 404 instead of closing the connection while the body is sent (EPIPE)', async () => {
    const answer = await requestAgent(agent.socketPath, 'GET', AGENT_PATHS.ADD, JSON.stringify({ containerID: 'c0ffee', padding: 'x'.repeat(100 * 1024) }));
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.body)).toEqual({ code: 4, msg: 'no such agent endpoint: GET /v1/cni/add' });
  });

  it('regression: refuses a CHECK whose ips is not a list with code 4 before it asks Temporal', async () => {
    const body = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'fuzz-ns', podName: 'check-ips', podUID: 'uid-1', ips: '10.0.0.1/24' };
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.CHECK, JSON.stringify(body));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({ code: 4, msg: '"ips" must be a list of addresses in CIDR notation, got "10.0.0.1/24"' });
  });

  it('regression: refuses a pod name Kubernetes cannot have before it names a lifecycle', async () => {
    const body = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'fuzz-ns', podName: 'a/b', podUID: 'uid-1', netns: '/var/run/netns/x' };
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify(body));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 4, msg: expect.stringMatching(/^"podName" "a\/b" is not a Kubernetes pod name/) as unknown });
    expect([...(await lifecycleWorkflowIds(agent))].filter((id) => id.startsWith('pod-ip/fuzz-ns/a/'))).toEqual([]);
  });

  it('regression: a CHECK of a lifecycle whose worker is gone answers code 11, not 500', async () => {
    // Found by the fuzzer: a pod name reused from an earlier session named a finished lifecycle on that
    // session's task queue; with no worker polling it, Temporal refuses the query (FAILED_PRECONDITION "no
    // poller seen for task queue recently") or lets it run into the deadline.
    const earlier = await startAgentUnderFuzz(stack());
    const attachment = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'fuzz-ns', podName: `worker-gone-${earlier.taskQueue.split('-').at(-1)}`, podUID: 'uid-1' };
    await requestAgent(earlier.socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify({ ...attachment, netns: '/x', defaultPools: { ipv4: [], ipv6: [] } }));
    await earlier.stop();
    const answer = await requestAgent(agent.socketPath, 'POST', AGENT_PATHS.CHECK, JSON.stringify({ ...attachment, ips: [] }));
    expect(JSON.parse(answer.body)).toMatchObject({ code: 11, details: expect.stringMatching(/no poller|CANCELLED|DEADLINE_EXCEEDED/) as unknown });
    expect(answer.status).toBe(400);
  });
});

describe('the agent socket API when Temporal does not answer in time', () => {
  /** A real agent on a temp socket whose Temporal calls get `deadlineMs`. */
  async function agentWithDeadline(deadlineMs: number) {
    const { client, close } = await temporalClient();
    const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-agent-deadline-'));
    const socketPath = path.join(dir, 'agent.sock');
    const agent = createAgent({ client, temporalAddress: stack().temporalAddress, nodeName: '', addTimeoutMs: deadlineMs, delTimeoutMs: deadlineMs, spoolDir: path.join(dir, 'spool') });
    const server = await serveAgent(agent, socketPath);
    return {
      client,
      check: (podName: string) =>
        requestAgent(socketPath, 'POST', AGENT_PATHS.CHECK, JSON.stringify({ containerID: 'c0ffee', interface: 'eth0', podNamespace: 'fuzz-ns', podName, podUID: 'uid-1', ips: [] })),
      stop: async () => {
        await new Promise((resolve) => server.close(resolve));
        await close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('regression: a CHECK whose query times out answers code 11 (try again later), not 500', async () => {
    // A deadline of 1 ms: the query fails with gRPC DEADLINE_EXCEEDED, as it does under load.
    const agent = await agentWithDeadline(1);
    try {
      const answer = await agent.check('deadline');
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({
        code: 11,
        msg: expect.stringMatching(/^Tidepool did not answer CHECK for pod \S+ within [\d.]+ s: is Temporal reachable at /) as unknown,
        details: expect.stringMatching(/DEADLINE_EXCEEDED/) as unknown,
      });
    } finally {
      await agent.stop();
    }
  });

  it('regression: a CHECK of a lifecycle no worker serves answers code 11 when the query is cancelled at the deadline', async () => {
    const agent = await agentWithDeadline(2000);
    const podName = `no-worker-${randomBytes(3).toString('hex')}`;
    const handle = await agent.client.workflow.start('podIPLifecycle', {
      workflowId: podLifecycleWorkflowId('fuzz-ns', podName),
      taskQueue: `tidepool-no-worker-${randomBytes(3).toString('hex')}`,
      args: [{ namespace: 'fuzz-ns', pod: podName }],
    });
    try {
      const answer = await agent.check(podName);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ code: 11, details: expect.stringMatching(/CANCELLED|DEADLINE_EXCEEDED/) as unknown });
    } finally {
      await handle.terminate('test done');
      await agent.stop();
    }
  });
});
