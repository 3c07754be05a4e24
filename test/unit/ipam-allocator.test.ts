import { describe, expect, it } from 'vitest';
import type { IPPool, IPPoolSpec } from '../../src/k8s/types.ts';
import { allocatePodIPs, NoFreeIPError, PoolNotFoundError, type PoolStore } from '../../src/ipam/allocator.ts';
import { poolAddresses } from '../../src/ipam/pool.ts';
import { IPSet } from '../../src/ipam/ranges.ts';
import { choosePools, PoolSelectionError } from '../../src/ipam/selection.ts';
import { allocateInStatus, releaseInStatus, type AllocationRequest } from '../../src/ipam/status.ts';

const options = { now: '2026-12-01T12:00:00Z', cooldownMs: 0 };
const none = { 4: IPSet.empty(4), 6: IPSet.empty(6) };

function pool(name: string, spec: IPPoolSpec): IPPool {
  return { apiVersion: 'tidepool.dev/v1alpha1', kind: 'IPPool', metadata: { name }, spec };
}

/** A PoolStore over a map of pools, the way host-local's tests use a fake backend.Store. */
class FakeStore implements PoolStore {
  readonly live = new Map<string, IPPool>();
  cached: IPPool[] = [];
  readonly calls: string[] = [];

  add(p: IPPool, cached = true): void {
    this.live.set(p.metadata.name, p);
    if (cached) this.cached.push(p);
  }

  pools(fresh: boolean): Promise<readonly IPPool[]> {
    this.calls.push(fresh ? 'list live' : 'list cached');
    return Promise.resolve(fresh ? [...this.live.values()] : this.cached);
  }

  allocate(name: string, request: AllocationRequest, reserved: IPSet) {
    this.calls.push(`allocate ${name}`);
    const current = this.live.get(name);
    if (!current) return Promise.reject(new PoolNotFoundError(name));
    const result = allocateInStatus(current, poolAddresses(name, current.spec), reserved, request, options);
    this.live.set(name, { ...current, status: result.status });
    return Promise.resolve(result.outcome);
  }

  release(name: string, ip: string, podUID: string, containerID?: string) {
    this.calls.push(`release ${name} ${ip}`);
    const current = this.live.get(name);
    if (!current) return Promise.reject(new PoolNotFoundError(name));
    const result = releaseInStatus(current, poolAddresses(name, current.spec), { ip, podUID, ...(containerID ? { containerID } : {}) }, options);
    this.live.set(name, { ...current, status: result.status });
    return Promise.resolve(result.outcome);
  }

  records(name: string): string[] {
    return Object.keys(this.live.get(name)?.status?.allocatedIPs ?? {});
  }
}

const request: AllocationRequest = { pod: 'ns/web', podUID: 'uid-1', containerID: 'c1', interface: 'eth0' };
const named = (v4: string[], v6: string[] = []) => (pools: readonly IPPool[]) =>
  Promise.resolve(
    choosePools({
      pod: { namespace: 'ns', name: 'web', annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: v4, ...(v6.length ? { ipv6: v6 } : {}) }) } },
      namespace: {},
      node: undefined,
      interface: 'eth0',
      defaultPools: {},
      pools,
    }),
  );

describe('allocatePodIPs over a PoolStore', () => {
  it('takes one IP per family from the first candidate that has one, skipping exhausted and deleted pools', async () => {
    const store = new FakeStore();
    store.add(pool('full', { subnet: '10.1.0.0/24', ips: ['10.1.0.1'] }));
    store.add(pool('gone', { subnet: '10.2.0.0/24', ips: ['10.2.0.1'] }));
    store.add(pool('v4', { subnet: '10.3.0.0/24', ips: ['10.3.0.1-10.3.0.9'] }));
    store.add(pool('v6', { subnet: 'fd00:3::/64', ips: ['fd00:3::1-fd00:3::9'] }));
    await store.allocate('full', { ...request, podUID: 'other', pod: 'ns/other' }, IPSet.empty(4));
    store.live.delete('gone');
    const outcomes: string[] = [];
    const allocation = await allocatePodIPs(store, named(['full', 'gone', 'v4'], ['v6']), request, none, (p, o) => outcomes.push(`${p}:${o.kind}`));
    expect(allocation.ips.map((i) => [i.pool.metadata.name, i.ip, i.fresh])).toEqual([['v4', '10.3.0.1', true], ['v6', 'fd00:3::1', true]]);
    expect(outcomes).toEqual(['full:exhausted', 'v4:allocated', 'v6:allocated']);
  });

  it('releases the IPs it newly allocated when another family gets none, and names every refusal', async () => {
    const store = new FakeStore();
    store.add(pool('v4', { subnet: '10.3.0.0/24', ips: ['10.3.0.1-10.3.0.9'] }));
    store.add(pool('v6', { subnet: 'fd00:3::/64', ips: ['fd00:3::1'] }));
    await store.allocate('v6', { ...request, podUID: 'other', pod: 'ns/other' }, IPSet.empty(6));
    const failure = await allocatePodIPs(store, named(['v4'], ['v6']), request, none).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(NoFreeIPError);
    expect((failure as Error).message).toBe('no IPv6 address is free for pod ns/web in pool v6 (every IP in use or reserved)');
    expect(store.records('v4')).toEqual([]);
    expect(store.calls).toContain('release v4 10.3.0.1');
  });

  it('keeps an IP the pod already held when another family fails: a repeated ADD loses nothing', async () => {
    const store = new FakeStore();
    store.add(pool('v4', { subnet: '10.3.0.0/24', ips: ['10.3.0.1-10.3.0.9'] }));
    store.add(pool('v6', { subnet: 'fd00:3::/64', ips: ['fd00:3::1'] }));
    await store.allocate('v6', { ...request, podUID: 'other', pod: 'ns/other' }, IPSet.empty(6));
    await store.allocate('v4', request, IPSet.empty(4));
    await expect(allocatePodIPs(store, named(['v4'], ['v6']), request, none)).rejects.toBeInstanceOf(NoFreeIPError);
    expect(store.records('v4')).toEqual(['10.3.0.1']);
  });

  it('chooses from the cached pools, and from a live read only when the cache does not know a named pool', async () => {
    const store = new FakeStore();
    store.add(pool('old', { subnet: '10.3.0.0/24', ips: ['10.3.0.1'] }));
    store.add(pool('new', { subnet: '10.4.0.0/24', ips: ['10.4.0.1'] }), false);
    await allocatePodIPs(store, named(['old']), request, none);
    expect(store.calls.filter((c) => c.startsWith('list'))).toEqual(['list cached']);
    const allocation = await allocatePodIPs(store, named(['new']), { ...request, podUID: 'uid-2' }, none);
    expect(allocation.ips.map((i) => i.ip)).toEqual(['10.4.0.1']);
    expect(store.calls.filter((c) => c.startsWith('list'))).toEqual(['list cached', 'list cached', 'list live']);
    await expect(allocatePodIPs(store, named(['nowhere']), request, none)).rejects.toBeInstanceOf(PoolSelectionError);
  });
});
