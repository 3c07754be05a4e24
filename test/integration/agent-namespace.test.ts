import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniError, createAgent } from '../../src/agent/agent.ts';
import { CniErrorCode } from '../../src/contract/cni-codes.ts';
import type { AgentAddRequest } from '../../src/contract/agent-api.ts';
import { stack } from '../harness/cluster.ts';

let connection: Connection;

beforeAll(async () => {
  connection = await Connection.connect({ address: stack().temporalAddress });
});

afterAll(async () => {
  await connection?.close();
});

describe('an ADD while Temporal does not know the agent’s namespace', () => {
  it('asks again until its deadline is near (a restarted database answers so for a moment), then fails with code 11 naming the namespace', async () => {
    const namespace = `no-such-${randomBytes(3).toString('hex')}`;
    const addTimeoutMs = 3000;
    const agent = createAgent({
      client: new Client({ connection, namespace }),
      temporalAddress: stack().temporalAddress,
      nodeName: 'node-a',
      addTimeoutMs,
      delTimeoutMs: 2000,
      spoolDir: mkdtempSync(path.join(tmpdir(), 'tidepool-namespace-')),
    });
    const request: AgentAddRequest = {
      containerID: randomBytes(32).toString('hex'),
      interface: 'eth0',
      podNamespace: 'default',
      podName: 'p',
      podUID: randomUUID(),
      netns: '/var/run/netns/x',
      defaultPools: { ipv4: [], ipv6: [] },
    };
    const started = Date.now();
    const error = await agent.add(request).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(CniError);
    expect((error as CniError).code).toBe(CniErrorCode.TryAgainLater);
    expect((error as CniError).message).toContain(`does not know namespace ${namespace}; is TEMPORAL_NAMESPACE right?`);
    // Without asking again it fails in milliseconds.
    expect(Date.now() - started).toBeGreaterThan(addTimeoutMs - 1000);
  });
});
