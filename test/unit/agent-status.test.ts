import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';

/** Just what STATUS asks of a Temporal client: the task queue's pollers, under a deadline. */
function agentWith(describeTaskQueue: () => Promise<{ pollers?: { lastAccessTime?: { seconds: number; nanos: number } }[] }>) {
  const client = { options: { namespace: 'default' }, withDeadline: (_deadline: number, fn: () => unknown) => fn(), workflowService: { describeTaskQueue } };
  return createAgent({
    client: client as unknown as Client,
    temporalAddress: 'temporal:7233',
    nodeName: 'node-1',
    addTimeoutMs: 1000,
    delTimeoutMs: 1000,
    statusTimeoutMs: 1000,
    spoolDir: '/nonexistent',
  });
}

const secondsAgo = (seconds: number) => ({ seconds: Math.floor(Date.now() / 1000) - seconds, nanos: 0 });

describe('the agent answers STATUS', () => {
  it('succeeds while a worker polls the task queue', async () => {
    await expect(agentWith(async () => ({ pollers: [{ lastAccessTime: secondsAgo(300) }, { lastAccessTime: secondsAgo(5) }] })).status()).resolves.toBeUndefined();
  });

  it('fails with code 50 when Temporal lists only pollers of workers gone for minutes, or none', async () => {
    for (const pollers of [[{ lastAccessTime: secondsAgo(300) }], [], undefined]) {
      await expect(agentWith(async () => ({ ...(pollers ? { pollers } : {}) })).status()).rejects.toMatchObject({
        code: 50,
        message: 'no tidepool worker polls task queue tidepool at temporal:7233: Tidepool cannot allocate IPs',
      });
    }
  });

  it('fails with code 50 when Temporal does not answer', async () => {
    const unreachable = agentWith(async () => {
      throw Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });
    });
    await expect(unreachable.status()).rejects.toMatchObject({
      code: 50,
      message: 'Temporal did not answer within 1 s at temporal:7233: Tidepool cannot allocate IPs',
      details: '14 UNAVAILABLE: No connection established',
    });
  });
});
