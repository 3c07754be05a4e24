import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentAddRequest } from '../../src/contract/agent-api.ts';
import { agentAdd, agentCheck, agentDel, agentGc, agentStatus, type AgentOutcome } from '../../src/cni/agent-client.ts';
import { cniError, json, startFakeAgent, type AgentCall, type FakeAgent, type FakeAnswer } from './cni-fake-agent.ts';

const attachment = {
  containerID: 'c0ffee',
  interface: 'net1',
  podNamespace: 'default',
  podName: 'web-0',
  podUID: 'uid-1',
};
const addRequest: AgentAddRequest = {
  ...attachment,
  netns: '/var/run/netns/cni-1',
  defaultPools: { ipv4: ['pool-a'], ipv6: [] },
};

const agents: FakeAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

async function agentAnswering(answer: (call: AgentCall) => FakeAnswer): Promise<FakeAgent> {
  const agent = await startFakeAgent(mkdtempSync(path.join(tmpdir(), 'tidepool-cni-')), answer);
  agents.push(agent);
  return agent;
}

function failureOf<T>(outcome: AgentOutcome<T>) {
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  return outcome.failure;
}

describe('agent client', () => {
  it('posts ADD to /v1/cni/add and gives the validated allocation', async () => {
    const agent = await agentAnswering(() =>
      json(200, {
        ips: [{ address: '10.6.0.5/16', version: 4, gateway: '10.6.0.1', pool: 'pool-a', vlan: 0 }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }],
      }),
    );
    const outcome = await agentAdd({ socketPath: agent.socketPath, timeoutSeconds: 5 }, addRequest);
    expect(outcome).toEqual({
      ok: true,
      value: {
        ips: [{ address: '10.6.0.5/16', version: 4, gateway: '10.6.0.1' }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }],
      },
    });
    expect(agent.calls).toEqual([{ path: '/v1/cni/add', body: addRequest }]);
  });

  it('posts DEL and CHECK to their paths and takes {} as success', async () => {
    const agent = await agentAnswering(() => json(200, {}));
    const endpoint = { socketPath: agent.socketPath, timeoutSeconds: 5 };
    expect(await agentDel(endpoint, attachment)).toEqual({ ok: true, value: undefined });
    expect(await agentCheck(endpoint, { ...attachment, ips: ['10.6.0.5/16'] })).toEqual({ ok: true, value: undefined });
    expect(agent.calls).toEqual([
      { path: '/v1/cni/del', body: attachment },
      { path: '/v1/cni/check', body: { ...attachment, ips: ['10.6.0.5/16'] } },
    ]);
  });

  it('posts GC with the valid attachments and takes a GC result; refuses an answer that is not one', async () => {
    const gcResult = { network: 'underlay', node: 'node-1', validAttachments: 1, stale: 1, tooYoung: 0, released: ['10.6.0.9'] };
    const request = { network: 'underlay', validAttachments: [{ containerID: 'c0ffee', interface: 'eth0' }] };
    const agent = await agentAnswering((call) => json(200, (call.body as { network?: string }).network === 'underlay' ? gcResult : {}));
    const endpoint = { socketPath: agent.socketPath, timeoutSeconds: 5 };
    expect(await agentGc(endpoint, request)).toEqual({ ok: true, value: gcResult });
    expect(agent.calls).toEqual([{ path: '/v1/cni/gc', body: request }]);
    const bad = failureOf(await agentGc(endpoint, { ...request, network: 'other' }));
    expect(bad).toMatchObject({ kind: 'bad-answer', error: { code: 5 } });
  });

  it('STATUS: an agent that cannot be reached or does not answer means the plugin is not available (code 50)', async () => {
    const agent = await agentAnswering(() => json(200, {}));
    expect(await agentStatus({ socketPath: agent.socketPath, timeoutSeconds: 5 })).toEqual({ ok: true, value: undefined });
    const missing = path.join(mkdtempSync(path.join(tmpdir(), 'tidepool-cni-')), 'agent.sock');
    expect(failureOf(await agentStatus({ socketPath: missing, timeoutSeconds: 5 }))).toMatchObject({ kind: 'unreachable', error: { code: 50 } });
    const hanging = await agentAnswering(() => 'hang');
    const timeout = failureOf(await agentStatus({ socketPath: hanging.socketPath, timeoutSeconds: 0.1 }));
    expect(timeout.error).toMatchObject({ code: 50, details: expect.stringContaining('ipam.status_timeout_seconds') });
    const refusing = await agentAnswering(() => cniError(400, { code: 50, msg: 'no tidepool worker polls task queue tidepool' }));
    expect(failureOf(await agentStatus({ socketPath: refusing.socketPath, timeoutSeconds: 5 }))).toEqual({
      kind: 'rejected',
      error: { code: 50, msg: 'no tidepool worker polls task queue tidepool' },
    });
  });

  it('passes the CNI error of a non-200 answer through', async () => {
    const agent = await agentAnswering(() =>
      cniError(409, { code: 107, msg: 'pool-a is exhausted', details: '0 of 16 free' }),
    );
    const failure = failureOf(await agentAdd({ socketPath: agent.socketPath, timeoutSeconds: 5 }, addRequest));
    expect(failure).toEqual({
      kind: 'rejected',
      error: { code: 107, msg: 'pool-a is exhausted', details: '0 of 16 free' },
    });
  });

  it.each<[string, FakeAnswer, string]>([
    ['a body that is not JSON', { status: 200, body: '<html>hello</html>' }, 'HTTP 200 with a body that is not JSON'],
    [
      'an error without a code',
      json(500, { error: 'boom' }),
      'HTTP 500 without a CNI error {"code", "msg", "details"?}',
    ],
    ['no ips', json(200, { ips: [], routes: [] }), '"ips" is missing or empty'],
    [
      'an address of the wrong family',
      json(200, { ips: [{ address: 'fd00::5/64', version: 4, pool: 'p' }], routes: [] }),
      'ips[0].address "fd00::5/64" is not an IPv4 CIDR',
    ],
    [
      'a route gateway that is no address',
      json(200, {
        ips: [{ address: '10.6.0.5/16', version: 4, pool: 'p' }],
        routes: [{ dst: '0.0.0.0/0', gw: 'router' }],
      }),
      'routes[0].gw "router" is not an IPv4 address',
    ],
  ])('reports %s as an I/O failure (code 5) naming the socket', async (_what, answer, problem) => {
    const agent = await agentAnswering(() => answer);
    const failure = failureOf(await agentAdd({ socketPath: agent.socketPath, timeoutSeconds: 5 }, addRequest));
    expect(failure.kind).toBe('bad-answer');
    expect(failure.error.code).toBe(5);
    expect(failure.error.msg).toBe(
      `tidepool agent at ${agent.socketPath} gave an unexpected answer to ADD: ${problem}`,
    );
  });

  it('gives up at the deadline with code 11, naming the socket and the time', async () => {
    const agent = await agentAnswering(() => 'hang');
    const started = performance.now();
    const failure = failureOf(await agentAdd({ socketPath: agent.socketPath, timeoutSeconds: 0.2 }, addRequest));
    expect(performance.now() - started).toBeLessThan(2000);
    expect(failure.kind).toBe('timeout');
    expect(failure.error).toMatchObject({
      code: 11,
      msg: `tidepool agent at ${agent.socketPath} did not answer ADD within 0.2 s`,
    });
    expect(failure.error.details).toContain('ipam.add_timeout_seconds');
    const del = failureOf(await agentDel({ socketPath: agent.socketPath, timeoutSeconds: 0.1 }, attachment));
    expect(del.error.details).toContain('ipam.del_timeout_seconds');
  });

  it('says the agent is not reachable when there is no socket, or nobody listens on it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-cni-'));
    const missing = path.join(dir, 'agent.sock');
    const failure = failureOf(await agentAdd({ socketPath: missing, timeoutSeconds: 5 }, addRequest));
    expect(failure).toMatchObject({
      kind: 'unreachable',
      error: {
        code: 11,
        msg: `tidepool agent is not reachable at ${missing} (ENOENT): is the tidepool-agent DaemonSet running on this node?`,
      },
    });
    writeFileSync(missing, ''); // a path that exists but is no listening socket
    const refused = failureOf(await agentCheck({ socketPath: missing, timeoutSeconds: 5 }, { ...attachment, ips: [] }));
    expect(refused.error.msg).toContain('(ECONNREFUSED)');
  });

  it('tells a connection that broke before the answer from one that never opened', async () => {
    const agent = await agentAnswering(() => 'hang-up');
    const failure = failureOf(await agentDel({ socketPath: agent.socketPath, timeoutSeconds: 5 }, attachment));
    expect(failure.kind).toBe('unreachable');
    expect(failure.error.msg).toBe(
      `the connection to the tidepool agent at ${agent.socketPath} broke before it answered DEL (ECONNRESET)`,
    );
  });
});
