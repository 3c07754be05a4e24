import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IPPool, IPPoolSpec } from '../../src/k8s/types.ts';
import { IPAMInputError, parseIP } from '../../src/ipam/ip.ts';
import { chooseFreeIP, ipSetOf, poolAddresses } from '../../src/ipam/pool.ts';
import { IPSet } from '../../src/ipam/ranges.ts';
import { allocateInStatus, applyToStatus, MAX_RECORDS_PER_POOL, recordInStatus, releaseInStatus, type AllocationRequest, type StatusOperation } from '../../src/ipam/status.ts';

function pool(spec: IPPoolSpec, status?: IPPool['status'], deleting = false): IPPool {
  return {
    apiVersion: 'tidepool.dev/v1alpha1',
    kind: 'IPPool',
    metadata: { name: 'pool-a', ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    spec,
    status,
  };
}

const NOW = '2026-11-22T12:00:00Z';
const options = { now: NOW, cooldownMs: 0 };
const request = (n: number, iface = 'eth0'): AllocationRequest => ({
  pod: `default/pod-${n}`,
  podUID: `uid-${n}`,
  containerID: `c-${n}`,
  interface: iface,
  node: 'node-1',
});

describe('poolAddresses', () => {
  it('allocatable is ips minus excludeIPs minus the gateway', () => {
    const a = poolAddresses('p', {
      subnet: '10.6.0.0/24',
      ips: ['10.6.0.1-10.6.0.10'],
      excludeIPs: ['10.6.0.3-10.6.0.4'],
      gateway: '10.6.0.1',
    });
    expect(a.allocatable.toStrings()).toEqual(['10.6.0.2', '10.6.0.5-10.6.0.10']);
  });

  it('names the pool and the field when the spec is wrong', () => {
    expect(() => poolAddresses('p', { subnet: '10.6.0.0/24', ips: ['10.7.0.1'] })).toThrow(
      'IPPool p spec.ips: 10.7.0.1 outside subnet 10.6.0.0/24',
    );
    expect(() => poolAddresses('p', { subnet: '10.6.0.0/24', ips: ['10.6.0.1'], ipVersion: 6 })).toThrow(IPAMInputError);
  });
});

const offsets = fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { maxLength: 12 });
const toIPs = (xs: number[]) => xs.map((x) => `10.6.0.${x}`);

describe('chooseFreeIP', () => {
  it('never returns an excluded, reserved, gateway, used or out-of-range IP, and returns the lowest free one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 31 }),
        fc.integer({ min: 0, max: 31 }),
        offsets,
        fc.integer({ min: 0, max: 31 }),
        offsets,
        offsets,
        (a, b, excluded, gateway, reserved, used) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const spec = { subnet: '10.6.0.0/24', ips: [`10.6.0.${lo}-10.6.0.${hi}`], excludeIPs: toIPs(excluded), gateway: `10.6.0.${gateway}` };
          const addresses = poolAddresses('p', spec);
          const got = chooseFreeIP(addresses, ipSetOf(4, toIPs(reserved)), ipSetOf(4, toIPs(used)));
          const blocked = new Set([...excluded, gateway, ...reserved, ...used]);
          let expected: string | undefined;
          for (let x = lo; x <= hi; x++) {
            if (!blocked.has(x)) {
              expected = `10.6.0.${x}`;
              break;
            }
          }
          expect(got).toBe(expected);
        },
      ),
    );
  });

  it('stays fast on an IPv6 /64 pool that is mostly used from the start', () => {
    const addresses = poolAddresses('v6', { subnet: 'fd00:6::/64', ips: ['fd00:6::-fd00:6::ffff:ffff:ffff:ffff'], gateway: 'fd00:6::1' });
    const used = Array.from({ length: 5000 }, (_, i) => `fd00:6::${(i + 2).toString(16)}`);
    const reserved = IPSet.parse(6, ['fd00:6::-fd00:6::ffff:ffff'], 'reserved').subtract(IPSet.parse(6, ['fd00:6::ffff:fff0'], 'x'));
    expect(chooseFreeIP(addresses, reserved, ipSetOf(6, used))).toBe('fd00:6::ffff:fff0');
    expect(chooseFreeIP(addresses, IPSet.parse(6, ['fd00:6::-fd00:6::ffff:ffff'], 'r'), ipSetOf(6, used))).toBe('fd00:6::1:0:0');
  });
});

describe('allocateInStatus / releaseInStatus', () => {
  const spec: IPPoolSpec = { subnet: '10.6.0.0/24', ips: ['10.6.0.10-10.6.0.12'], gateway: '10.6.0.1' };
  const addresses = poolAddresses('pool-a', spec);
  const none = IPSet.empty(4);

  it('hands out distinct IPs until the pool is exhausted, and keeps the counts equal to the records', () => {
    let current = pool(spec);
    const ips: string[] = [];
    for (let n = 0; n < 3; n++) {
      const { status, outcome } = allocateInStatus(current, addresses, none, request(n), options);
      expect(outcome.kind).toBe('allocated');
      ips.push((outcome as { ip: string }).ip);
      current = pool(spec, status);
      expect(status.allocatedIPCount).toBe(Object.keys(status.allocatedIPs!).length);
      expect(status.totalIPCount).toBe(3);
    }
    expect(ips).toEqual(['10.6.0.10', '10.6.0.11', '10.6.0.12']);
    expect(allocateInStatus(current, addresses, none, request(3), options).outcome).toEqual({ kind: 'exhausted' });
  });

  it('is idempotent per pod UID and interface, and allocates again for another interface', () => {
    const first = allocateInStatus(pool(spec), addresses, none, request(1), options);
    const again = allocateInStatus(pool(spec, first.status), addresses, none, { ...request(1), containerID: 'c-new' }, options);
    expect(again.outcome).toEqual({ kind: 'existing', ip: '10.6.0.10' });
    expect(again.status.allocatedIPs!['10.6.0.10']!.containerID).toBe('c-new');
    expect(allocateInStatus(pool(spec, again.status), addresses, none, request(1, 'net1'), options).outcome).toEqual({
      kind: 'allocated',
      ip: '10.6.0.11',
    });
  });

  it('lets a re-created StatefulSet pod adopt its predecessor record, and only that one', () => {
    const first = allocateInStatus(pool(spec), addresses, none, request(1), options);
    const adopted = allocateInStatus(pool(spec, first.status), addresses, none, { ...request(1), podUID: 'uid-1b', adoptFromUID: 'uid-1' }, options);
    expect(adopted.outcome).toEqual({ kind: 'existing', ip: '10.6.0.10' });
    expect(adopted.status.allocatedIPs!['10.6.0.10']!.podUID).toBe('uid-1b');
    const stranger = allocateInStatus(pool(spec, first.status), addresses, none, { ...request(2), adoptFromUID: 'uid-1' }, options);
    expect(stranger.outcome).toEqual({ kind: 'allocated', ip: '10.6.0.11' });
  });

  it('gives terminating and disabled pools no new IPs but still answers a repeated ADD', () => {
    const first = allocateInStatus(pool(spec), addresses, none, request(1), options);
    const deleting = pool(spec, first.status, true);
    expect(allocateInStatus(deleting, addresses, none, request(2), options).outcome).toEqual({ kind: 'unavailable', reason: 'it is being deleted' });
    expect(allocateInStatus(deleting, addresses, none, request(1), options).outcome.kind).toBe('existing');
    expect(allocateInStatus(pool({ ...spec, disable: true }), addresses, none, request(2), options).outcome.kind).toBe('unavailable');
  });

  it('never hands out a reserved IP', () => {
    const reserved = IPSet.parse(4, ['10.6.0.10-10.6.0.11'], 'r');
    const { outcome } = allocateInStatus(pool(spec), addresses, reserved, request(1), options);
    expect(outcome).toEqual({ kind: 'allocated', ip: '10.6.0.12' });
  });

  it('releases only while the record still names the same pod UID (and container)', () => {
    const first = allocateInStatus(pool(spec), addresses, none, request(1), options);
    const held = pool(spec, first.status);
    expect(releaseInStatus(held, addresses, { ip: '10.6.0.10', podUID: 'uid-2' }, options).outcome.kind).toBe('held-by-other');
    expect(releaseInStatus(held, addresses, { ip: '10.6.0.10', podUID: 'uid-1', containerID: 'c-old' }, options).outcome.kind).toBe('held-by-other');
    expect(releaseInStatus(held, addresses, { ip: '10.6.0.99', podUID: 'uid-1' }, options).outcome.kind).toBe('not-held');
    const released = releaseInStatus(held, addresses, { ip: '10.6.0.10', podUID: 'uid-1', containerID: 'c-1' }, options);
    expect(released.outcome.kind).toBe('released');
    expect(released.status.allocatedIPs).toEqual({});
    expect(released.status.allocatedIPCount).toBe(0);
  });

  it('keeps a released IP out of reach for the cooldown, then hands it out again', () => {
    const cooldown = { now: NOW, cooldownMs: 30_000 };
    const one = pool({ ...spec, ips: ['10.6.0.10'] });
    const a = allocateInStatus(one, addresses, none, request(1), cooldown);
    const r = releaseInStatus(pool(one.spec, a.status), addresses, { ip: '10.6.0.10', podUID: 'uid-1' }, cooldown);
    expect(r.status.releasedIPs).toEqual({ '10.6.0.10': NOW });
    const small = poolAddresses('pool-a', one.spec);
    expect(allocateInStatus(pool(one.spec, r.status), small, none, request(2), cooldown).outcome.kind).toBe('exhausted');
    const later = { now: '2026-11-22T12:00:31Z', cooldownMs: 30_000 };
    const b = allocateInStatus(pool(one.spec, r.status), small, none, request(2), later);
    expect(b.outcome).toEqual({ kind: 'allocated', ip: '10.6.0.10' });
    expect(b.status.releasedIPs).toBeUndefined();
  });

  it('never holds one IP twice, whatever the sequence of allocations and releases', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('allocate' as const), pod: fc.integer({ min: 0, max: 5 }), iface: fc.constantFrom('eth0', 'net1') }),
      fc.record({ kind: fc.constant('release' as const), ip: fc.integer({ min: 8, max: 14 }), pod: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        let current = pool(spec);
        for (const o of ops) {
          const result =
            o.kind === 'allocate'
              ? allocateInStatus(current, addresses, none, request(o.pod, o.iface), options)
              : releaseInStatus(current, addresses, { ip: `10.6.0.${o.ip}`, podUID: `uid-${o.pod}` }, options);
          current = pool(spec, result.status);
          const records = Object.entries(current.status?.allocatedIPs ?? {});
          const keys = records.map(([, r]) => `${r.podUID}/${r.interface}`);
          expect(new Set(keys).size).toBe(keys.length);
          for (const [ip] of records) expect(addresses.allocatable.has(parseIP(ip).value)).toBe(true);
          expect(current.status?.allocatedIPCount ?? 0).toBe(records.length);
        }
      }),
    );
  });

  it('refuses a new record once the pool holds the maximum, also when the batch itself fills it, and takes one again after a release', () => {
    const big: IPPoolSpec = { subnet: '10.9.0.0/16', ips: ['10.9.0.0-10.9.31.255'] };
    const bigAddresses = poolAddresses('pool-a', big);
    const allocatedIPs = Object.fromEntries(
      Array.from({ length: MAX_RECORDS_PER_POOL - 1 }, (_, i) => [
        `10.9.${Math.floor(i / 256)}.${i % 256}`,
        { pod: `default/held-${i}`, podUID: `held-${i}`, interface: 'eth0', allocatedAt: NOW },
      ]),
    );
    const allocate = (n: number): StatusOperation => ({ kind: 'allocate', request: request(n), reserved: none });
    const { outcomes } = applyToStatus(pool(big, { allocatedIPs }), bigAddresses, [
      allocate(1),
      allocate(2),
      { kind: 'release', ip: '10.9.0.0', podUID: 'held-0' },
      allocate(3),
    ], options);
    expect(outcomes.map((o) => o.kind)).toEqual(['allocated', 'unavailable', 'released', 'allocated']);
    expect(outcomes[1]).toEqual({ kind: 'unavailable', reason: `it holds the maximum of ${MAX_RECORDS_PER_POOL} records` });
  });

  it('a batch of operations leaves the status, and gives each the outcome, that one at a time would', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('allocate' as const), pod: fc.integer({ min: 0, max: 5 }), iface: fc.constantFrom('eth0', 'net1'), adopt: fc.boolean() }),
      fc.record({ kind: fc.constant('release' as const), ip: fc.integer({ min: 8, max: 14 }), pod: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('record' as const), ip: fc.integer({ min: 8, max: 14 }), pod: fc.integer({ min: 0, max: 5 }) }),
    );
    const operation = (o: { kind: string; pod: number; iface?: string; adopt?: boolean; ip?: number }): StatusOperation =>
      o.kind === 'allocate'
        ? { kind: 'allocate', request: { ...request(o.pod, o.iface), ...(o.adopt ? { podUID: `uid-${o.pod}-new`, adoptFromUID: `uid-${o.pod}` } : {}) }, reserved: none }
        : o.kind === 'release'
          ? { kind: 'release', ip: `10.6.0.${o.ip}`, podUID: `uid-${o.pod}` }
          : { kind: 'record', holder: { ip: `10.6.0.${o.ip}`, pod: `default/pod-${o.pod}`, podUID: `uid-${o.pod}`, interface: 'eth0', terminating: false, source: 'PodEndpoint' } };
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.constantFrom(0, 30_000), (ops, cooldownMs) => {
        const settings = { now: NOW, cooldownMs };
        let current = pool(spec);
        const outcomes = ops.map((o) => {
          const single = operation(o);
          const result =
            single.kind === 'allocate'
              ? allocateInStatus(current, addresses, single.reserved, single.request, settings)
              : single.kind === 'release'
                ? releaseInStatus(current, addresses, single, settings)
                : recordInStatus(current, addresses, single.holder, settings);
          current = pool(spec, result.status);
          return result.outcome;
        });
        const batch = applyToStatus(pool(spec), addresses, ops.map(operation), settings);
        expect(batch.outcomes).toEqual(outcomes);
        if (ops.length > 0) expect(batch.status).toEqual(current.status);
      }),
      { numRuns: 5000 },
    );
  });
});

