import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { apiHolderSource } from '../../src/store/holders.ts';
import { PoolWriter } from '../../src/store/pool-writer.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { IPSet } from '../../src/ipam/ranges.ts';
import { ClusterCache } from '../../src/k8s/cache.ts';
import { kubeConfig } from '../harness/cluster.ts';

const client = () => new TidepoolClient(kubeConfig());
const tag = randomBytes(3).toString('hex');
const name = `writers-${tag}`;
const spaced = `spaced-${tag}`;
const alternating = `alternating-${tag}`;

afterAll(async () => {
  for (const pool of [name, spaced, alternating]) {
    const found = await client().getPool(pool);
    if (found) await client().replacePoolStatus({ ...found, status: {} }).catch(() => undefined);
    await client().deletePool(pool).catch(() => undefined);
  }
});

describe('a pool writer with write spacing', () => {
  it("waits after each status write spacing times that write's duration, and puts what arrived meanwhile into the next write", async () => {
    await client().createPool(spaced, { subnet: '10.81.0.0/24', ips: ['10.81.0.1-10.81.0.200'] });
    const writes: { start: number; end: number }[] = [];
    const timed = client();
    const replace = timed.replacePoolStatus.bind(timed);
    timed.replacePoolStatus = async (pool) => {
      const start = performance.now();
      try {
        return await replace(pool);
      } finally {
        writes.push({ start, end: performance.now() });
      }
    };
    const spacing = 20;
    const writer = new PoolWriter({ client: timed, holders: apiHolderSource(kubeConfig()), cache: { pools: () => [], pool: () => undefined }, cooldownMs: 0, writeSpacing: spacing });
    const none = IPSet.empty(4);
    const request = (n: number) => ({ pod: `ns/s-${n}`, podUID: `uid-s-${n}`, containerID: `c-${n}`, interface: 'eth0' });
    // One at a time, then 30 at once while the pause after the previous write runs.
    for (let n = 0; n < 3; n++) expect((await writer.allocate(spaced, request(n), none)).kind).toBe('allocated');
    const burst = await Promise.all(Array.from({ length: 30 }, (_, k) => writer.allocate(spaced, request(3 + k), none)));
    expect(burst.every((outcome) => outcome.kind === 'allocated')).toBe(true);

    expect(writes.length).toBeGreaterThanOrEqual(4);
    expect(writes.length).toBeLessThan(3 + 30);
    for (let k = 1; k < writes.length; k++) {
      const previous = writes[k - 1]!;
      expect(writes[k]!.start - previous.end).toBeGreaterThanOrEqual((previous.end - previous.start) * spacing - 1);
    }
    expect((await client().getPool(spaced))!.status!.allocatedIPCount).toBe(33);
  });
});

describe('two pool writers on one pool, as two worker replicas run them', () => {
  it('retry 409s until every allocation and release lands, with no IP given twice and no update lost', async () => {
    await client().createPool(name, { subnet: '10.80.0.0/24', ips: ['10.80.0.1-10.80.0.200'] });
    const writers = [0, 1].map(() => new PoolWriter({ client: client(), holders: apiHolderSource(kubeConfig()), cache: { pools: () => [], pool: () => undefined }, cooldownMs: 0 }));
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

describe('two pool writers that take turns on one pool, each with its watch cache', () => {
  it("base each write on the other replica's last write once their watch shows it: no 409", async () => {
    await client().createPool(alternating, { subnet: '10.82.0.0/24', ips: ['10.82.0.1-10.82.0.200'] });
    const caches = [0, 1].map(() => new ClusterCache(kubeConfig()));
    await Promise.all(caches.map((cache) => cache.start()));
    try {
      const writers = caches.map((cache) => new PoolWriter({ client: client(), holders: apiHolderSource(kubeConfig()), cache, cooldownMs: 0 }));
      const none = IPSet.empty(4);
      const ips: string[] = [];
      for (let n = 0; n < 10; n++) {
        const outcome = await writers[n % 2]!.allocate(alternating, { pod: `ns/t-${n}`, podUID: `uid-t-${n}`, containerID: `c-${n}`, interface: 'eth0' }, none);
        if (outcome.kind !== 'allocated') throw new Error(`allocation ${n}: ${outcome.kind}`);
        ips.push(outcome.ip);
        const written = (await client().getPool(alternating))!.metadata.resourceVersion;
        await expect.poll(() => caches.every((cache) => cache.pool(alternating)?.metadata.resourceVersion === written), { timeout: 10_000 }).toBe(true);
      }
      expect(new Set(ips).size).toBe(10);
      expect(writers[0]!.stats.conflicts + writers[1]!.stats.conflicts).toBe(0);
      expect((await client().getPool(alternating))!.status!.allocatedIPCount).toBe(10);
    } finally {
      await Promise.all(caches.map((cache) => cache.stop()));
    }
  });
});
