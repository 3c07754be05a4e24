import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IPPool, PodEndpoint } from '../../src/k8s/types.ts';
import { liveHolders, poolHoldings, type LivePod } from '../../src/ipam/holders.ts';
import { poolAddresses } from '../../src/ipam/pool.ts';
import { IPSet } from '../../src/ipam/ranges.ts';
import { allocateInStatus, needsReconciliation, reconcileStatus, recordInStatus, releaseInStatus } from '../../src/ipam/status.ts';

const NOW = '2026-12-01T12:00:00Z';
const options = { now: NOW, cooldownMs: 0 };
const spec = { subnet: '10.7.0.0/24', ips: ['10.7.0.1-10.7.0.20'] };
const addresses = poolAddresses('pool-a', spec);

function pool(status?: IPPool['status'], uid = 'pool-uid-2'): IPPool {
  return { apiVersion: 'tidepool.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'pool-a', uid }, spec, ...(status ? { status } : {}) };
}

function livePod(n: number, extra: Partial<LivePod> = {}): LivePod {
  return { pod: `ns/pod-${n}`, uid: `uid-${n}`, node: 'node-1', podIPs: [], terminating: false, finished: false, ready: true, ...extra };
}

function endpoint(n: number, ips: { address: string; pool: string; interface?: string }[], uid = `uid-${n}`): PodEndpoint {
  return {
    apiVersion: 'tidepool.dev/v1alpha1',
    kind: 'PodEndpoint',
    metadata: { name: `pod-${n}`, namespace: 'ns' },
    status: { podUID: uid, node: 'node-1', ips: ips.map((ip) => ({ interface: ip.interface ?? 'eth0', containerID: `c-${n}`, ...ip })) },
  };
}

describe('liveHolders', () => {
  it('takes every interface of a pod’s own PodEndpoint, then the podIPs the endpoint does not name, as eth0', () => {
    const holders = liveHolders(
      [endpoint(1, [{ address: '10.7.0.5/24', pool: 'pool-a' }, { address: '10.8.0.5/24', pool: 'pool-b', interface: 'net1' }])],
      [livePod(1, { podIPs: ['10.7.0.5'] }), livePod(2, { podIPs: ['10.7.0.6'] })],
    );
    expect(holders.map((h) => [h.ip, h.pod, h.interface, h.containerID ?? '', h.pool ?? '', h.source])).toEqual([
      ['10.7.0.5', 'ns/pod-1', 'eth0', 'c-1', 'pool-a', 'PodEndpoint'],
      ['10.8.0.5', 'ns/pod-1', 'net1', 'c-1', 'pool-b', 'PodEndpoint'],
      ['10.7.0.6', 'ns/pod-2', 'eth0', '', '', 'podIPs'],
    ]);
  });

  it('takes no podIPs claim from a pod that is not ready: its sandbox may be gone and its IP released', () => {
    expect(liveHolders([], [livePod(1, { podIPs: ['10.7.0.5'], ready: false })])).toEqual([]);
    expect(liveHolders([endpoint(1, [{ address: '10.7.0.5/24', pool: 'pool-a' }])], [livePod(1, { ready: false })]).map((h) => h.source)).toEqual(['PodEndpoint']);
  });

  it('ignores finished pods, endpoints of pods that are gone or replaced (another UID), and unparsable addresses', () => {
    const holders = liveHolders(
      [endpoint(1, [{ address: '10.7.0.5/24', pool: 'pool-a' }], 'old-uid'), endpoint(3, [{ address: 'junk', pool: 'pool-a' }]), endpoint(4, [{ address: '10.7.0.9/24', pool: 'pool-a' }])],
      [livePod(1), livePod(2, { podIPs: ['10.7.0.6'], finished: true }), livePod(3)],
    );
    expect(holders).toEqual([]);
  });
});

describe('poolHoldings', () => {
  const live = (...uids: string[]) => new Set(uids);

  it('reports an IP a live pod holds with no record as unrecorded, preferring the PodEndpoint’s claim', () => {
    const holders = liveHolders([endpoint(1, [{ address: '10.7.0.5/24', pool: 'pool-a' }])], [livePod(1, { podIPs: ['10.7.0.5', '10.7.0.7'] })]);
    const holdings = poolHoldings(pool({ allocatedIPs: {} }), addresses, holders, live('uid-1'));
    expect(holdings.unrecorded.map((h) => [h.ip, h.source])).toEqual([['10.7.0.5', 'PodEndpoint'], ['10.7.0.7', 'podIPs']]);
    expect(holdings.conflicts).toEqual([]);
  });

  it('counts a podIPs claim only inside the pool’s ranges, and an endpoint’s claim only for the pool it names', () => {
    const holders = liveHolders([endpoint(1, [{ address: '10.7.0.5/24', pool: 'pool-b' }])], [livePod(1), livePod(2, { podIPs: ['10.7.0.200', 'fd00::5'] })]);
    expect(poolHoldings(pool(), addresses, holders, live('uid-1', 'uid-2'))).toEqual({ unrecorded: [], conflicts: [] });
  });

  it('reports two live pods on one IP as a conflict, by record and podIPs or by two claims', () => {
    const holders = liveHolders([], [livePod(1, { podIPs: ['10.7.0.5'] }), livePod(2, { podIPs: ['10.7.0.6'] }), livePod(3, { podIPs: ['10.7.0.6'] })]);
    const status = { allocatedIPs: { '10.7.0.5': { pod: 'ns/pod-9', podUID: 'uid-9' } } };
    const holdings = poolHoldings(pool(status), addresses, holders, live('uid-1', 'uid-2', 'uid-3', 'uid-9'));
    expect(holdings.conflicts.map((c) => [c.ip, c.holders.map((h) => h.podUID)])).toEqual([
      ['10.7.0.5', ['uid-9', 'uid-1']],
      ['10.7.0.6', ['uid-2', 'uid-3']],
    ]);
    expect(holdings.unrecorded.map((h) => h.ip)).toEqual(['10.7.0.6']);
  });

  it('does not count a record of a pod that is gone as a second holder', () => {
    const holders = liveHolders([], [livePod(1, { podIPs: ['10.7.0.5'] })]);
    const status = { allocatedIPs: { '10.7.0.5': { pod: 'ns/gone', podUID: 'gone-uid' } } };
    expect(poolHoldings(pool(status), addresses, holders, live('uid-1'))).toEqual({ unrecorded: [], conflicts: [] });
  });
});

describe('reconcileStatus', () => {
  it('records each unrecorded holder with its pod, UID, container and interface, and marks the pool object reconciled', () => {
    const fresh = pool();
    expect(needsReconciliation(fresh)).toBe(true);
    const holders = liveHolders([endpoint(1, [{ address: '10.7.0.1/24', pool: 'pool-a' }])], [livePod(1), livePod(2, { podIPs: ['10.7.0.2'] })]);
    const { status, recorded } = reconcileStatus(fresh, addresses, poolHoldings(fresh, addresses, holders, new Set()).unrecorded, options);
    expect(recorded.map((h) => h.ip)).toEqual(['10.7.0.1', '10.7.0.2']);
    expect(status.allocatedIPs).toEqual({
      '10.7.0.1': { pod: 'ns/pod-1', podUID: 'uid-1', containerID: 'c-1', interface: 'eth0', node: 'node-1', allocatedAt: NOW },
      '10.7.0.2': { pod: 'ns/pod-2', podUID: 'uid-2', interface: 'eth0', node: 'node-1', allocatedAt: NOW },
    });
    expect(status.allocatedIPCount).toBe(2);
    const reconciled = pool(status);
    expect(needsReconciliation(reconciled)).toBe(false);
    expect(needsReconciliation(pool(status, 'pool-uid-3'))).toBe(true);

    const next = allocateInStatus(reconciled, addresses, IPSet.empty(4), { pod: 'ns/new', podUID: 'uid-new', containerID: 'c', interface: 'eth0' }, options);
    expect(next.outcome).toEqual({ kind: 'allocated', ip: '10.7.0.3' });
    expect(next.status.reconciledUID).toBe('pool-uid-2');
    expect(releaseInStatus(pool(next.status), addresses, { ip: '10.7.0.1', podUID: 'uid-1' }, options).status.reconciledUID).toBe('pool-uid-2');
  });

  it('never rewrites an existing record', () => {
    const status = { allocatedIPs: { '10.7.0.1': { pod: 'ns/pod-9', podUID: 'uid-9' } } };
    const holders = liveHolders([], [livePod(1, { podIPs: ['10.7.0.1'] })]);
    const result = reconcileStatus(pool(status), addresses, holders, options);
    expect(result.recorded).toEqual([]);
    expect(result.status.allocatedIPs).toEqual(status.allocatedIPs);
    expect(recordInStatus(pool(status), addresses, holders[0]!, options).outcome).toEqual({ kind: 'held', holder: status.allocatedIPs['10.7.0.1'] });
  });

  it('property: after reconciliation no allocation hands out an IP a live pod holds', () => {
    const ipOf = (n: number) => `10.7.0.${n}`;
    fc.assert(
      fc.property(
        fc.array(fc.record({ podIPs: fc.uniqueArray(fc.integer({ min: 1, max: 20 }), { maxLength: 2 }), endpoint: fc.option(fc.integer({ min: 1, max: 20 })) }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 25 }),
        (pods, allocations) => {
          const live = pods.map((p, n) => livePod(n, { podIPs: p.podIPs.map(ipOf) }));
          const endpoints = pods.flatMap((p, n) => (p.endpoint === null ? [] : [endpoint(n, [{ address: `${ipOf(p.endpoint)}/24`, pool: 'pool-a' }])]));
          const holders = liveHolders(endpoints, live);
          const fresh = pool();
          let current = pool(reconcileStatus(fresh, addresses, poolHoldings(fresh, addresses, holders, new Set()).unrecorded, options).status);
          const held = new Set(holders.map((h) => h.ip));
          for (let k = 0; k < allocations; k++) {
            const result = allocateInStatus(current, addresses, IPSet.empty(4), { pod: `ns/new-${k}`, podUID: `new-${k}`, containerID: 'c', interface: 'eth0' }, options);
            if (result.outcome.kind === 'allocated') expect(held.has(result.outcome.ip)).toBe(false);
            current = pool(result.status);
          }
        },
      ),
    );
  });
});
