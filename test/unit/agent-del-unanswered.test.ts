import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Client, ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterEach, describe, expect, it } from 'vitest';
import { CniError, createAgent } from '../../src/agent/agent.ts';

/**
 * The failure the chaos run met once: a spooled DEL replayed into a workflow task that then failed
 * (UNHANDLED_COMMAND, a signal arriving as the lifecycle returned) came back as an update failure without the
 * lifecycle's answer, and the agent deleted the DEL. The timing cannot be produced on demand against a real
 * server, so a client whose update fails that way stands in for it.
 */
function clientWhoseReleaseFails(cause: Error | undefined): Client {
  const failure = new WorkflowUpdateFailedError('Workflow Update failed', cause);
  return {
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
    workflow: { getHandle: () => ({ executeUpdate: () => Promise.reject(failure) }) },
  } as unknown as Client;
}

const attachment = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'ns', podName: 'web-0', podUID: 'uid-1' };
const dirs: string[] = [];
function agentWith(client: Client) {
  const spoolDir = mkdtempSync(path.join(tmpdir(), 'tidepool-spool-'));
  dirs.push(spoolDir);
  return { spoolDir, agent: createAgent({ client, temporalAddress: 'temporal:7233', nodeName: '', addTimeoutMs: 1000, delTimeoutMs: 1000, spoolDir }) };
}
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('a CNI DEL whose update fails without the lifecycle’s answer', () => {
  it('is spooled, and a spooled one is kept for the next replay', async () => {
    const { agent, spoolDir } = agentWith(clientWhoseReleaseFails(undefined));
    expect(await agent.del(attachment)).toEqual({ spooled: true });
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(await agent.replaySpool()).toEqual({ replayed: 0, pending: 1 });
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
  });

  it('a DEL whose update fails with another error of the server (one seen during a Temporal restart) is spooled too', async () => {
    const restarting = new ServiceError('Workflow Update failed', { cause: Object.assign(new Error('13 INTERNAL: transport is closing'), { code: 13, details: 'transport is closing', metadata: {} }) });
    const client = { withDeadline: clientWhoseReleaseFails(undefined).withDeadline, workflow: { getHandle: () => ({ executeUpdate: () => Promise.reject(restarting) }) } } as unknown as Client;
    const { agent, spoolDir } = agentWith(client);
    expect(await agent.del(attachment)).toEqual({ spooled: true });
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
  });

  it('refused by the lifecycle itself, it fails with the lifecycle’s message and is not spooled', async () => {
    const refusal = ApplicationFailure.create({ type: 'Error', message: 'invalid request: containerID is empty', nonRetryable: true });
    const { agent, spoolDir } = agentWith(clientWhoseReleaseFails(refusal));
    const error = await agent.del(attachment).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CniError);
    expect((error as CniError).message).toBe('invalid request: containerID is empty');
    expect(readdirSync(spoolDir)).toEqual([]);
  });
});
