import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { apiHolderSource } from '../../src/store/holders.ts';
import { PoolWriter } from '../../src/store/pool-writer.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { IPSet } from '../../src/ipam/ranges.ts';
import { kubeConfig } from '../harness/cluster.ts';

const client = () => new TidepoolClient(kubeConfig());
const name = `writers-${randomBytes(3).toString('hex')}`;

afterAll(async () => {
  const pool = await client().getPool(name);
  if (pool) await client().replacePoolStatus({ ...pool, status: {} }).catch(() => undefined);
  await client().deletePool(name).catch(() => undefined);
});

describe('two pool writers on one pool, as two worker replicas run them', () => {
  it('retry 409s until every allocation and release lands, with no IP given twice and no update lost', async () => {
    await client().createPool(name, { subnet: '10.80.0.0/24', ips: ['10.80.0.1-10.80.0.200'] });
    const writers = [0, 1].map(() => new PoolWriter({ client: client(), holders: apiHolderSource(kubeConfig()), cache: { pools: () => [] }, cooldownMs: 0 }));
    const none = IPSet.empty(4);
    const request = (n: number) => ({ pod: `ns/p-${n}`, podUID: `uid-${n}`, containerID: `c-${n}`, interface: 'eth0' });

    const outcomes = await Promise.all(
      Array.from({ length: 120 }, (_, n) => writers[n % 2]!.allocate(name, request(n), none)),
    );
    const ips = outcomes.map((o) => (o.kind === 'allocated' ? o.ip : `not allocated: ${o.kind}`));
    expect(new Set(ips).size).toBe(120);

    const releases = await Promise.all(
      Array.from({ length: 60 }, (_, k) => writers[(k + 1) % 2]!.release(name, ips[k]!, `uid-${k}`)),
    );
    expect(releases.every((r) => r.kind === 'released')).toBe(true);

    const status = (await client().getPool(name))!.status!;
    expect(status.allocatedIPCount).toBe(60);
    expect(Object.entries(status.allocatedIPs!).map(([ip, r]) => [ip, r.podUID]).sort()).toEqual(
      ips.slice(60).map((ip, k) => [ip, `uid-${k + 60}`]).sort(),
    );
    const conflicts = writers[0]!.stats.conflicts + writers[1]!.stats.conflicts;
    const writes = writers[0]!.stats.writes + writers[1]!.stats.writes;
    expect(conflicts).toBeGreaterThan(0);
    expect(writes).toBeLessThan(180);
  });
});
