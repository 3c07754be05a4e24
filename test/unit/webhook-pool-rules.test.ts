import { describe, expect, it } from 'vitest';
import type { IPPool, IPPoolSpec, ReservedIP } from '../../src/k8s/types.ts';
import { deleteProblem, overlapProblems, poolMutations, reservedIPProblems, specProblems, updateProblems } from '../../src/webhook/pool-rules.ts';

function pool(name: string, spec: IPPoolSpec, status?: IPPool['status'], extra: Partial<IPPool['metadata']> = {}): IPPool {
  return { apiVersion: 'tidepool.dev/v1alpha1', kind: 'IPPool', metadata: { name, ...extra }, spec, status };
}
const base: IPPoolSpec = { subnet: '10.6.0.0/16', ips: ['10.6.1.1-10.6.1.100'], gateway: '10.6.0.1' };

describe('poolMutations', () => {
  it('adds the finalizer on create, defaults ipVersion, and merges and sorts ranges', () => {
    expect(poolMutations(pool('a', { subnet: '10.6.0.0/16', ips: ['10.6.1.50-10.6.1.60', '10.6.1.1', '10.6.1.2-10.6.1.49'] }), true)).toEqual([
      { op: 'add', path: '/metadata/finalizers', value: ['tidepool.dev/ip-protection'] },
      { op: 'add', path: '/spec/ipVersion', value: 4 },
      { op: 'replace', path: '/spec/ips', value: ['10.6.1.1-10.6.1.60'] },
    ]);
  });

  it('appends the finalizer to existing ones, leaves a normalised pool alone, and never adds the finalizer on update', () => {
    expect(poolMutations(pool('a', { ...base, ipVersion: 4 }, undefined, { finalizers: ['other'] }), true)).toEqual([
      { op: 'add', path: '/metadata/finalizers/-', value: 'tidepool.dev/ip-protection' },
    ]);
    expect(poolMutations(pool('a', { ...base, ipVersion: 4 }), false)).toEqual([]);
    expect(poolMutations(pool('a', { subnet: 'fd00:6::/64', ips: ['FD00:6::0010'] }), false)).toEqual([
      { op: 'add', path: '/spec/ipVersion', value: 6 },
      { op: 'replace', path: '/spec/ips', value: ['fd00:6::10'] },
    ]);
  });

  it('leaves a terminating pool alone, so that removing its finalizer is no spec change', () => {
    expect(poolMutations(pool('a', { subnet: '10.6.0.0/16', ips: ['10.6.1.2', '10.6.1.1'] }, undefined, { deletionTimestamp: new Date() }), false)).toEqual([]);
  });
});

describe('specProblems', () => {
  it('accepts a valid pool', () => {
    expect(specProblems({ ...base, excludeIPs: ['10.6.1.50'], routes: [{ dst: '172.16.0.0/12', gw: '10.6.0.1' }] })).toEqual([]);
  });

  it.each<[string, Partial<IPPoolSpec>, string]>([
    ['ips outside the subnet', { ips: ['10.7.0.1-10.7.0.2'] }, 'spec.ips: 10.7.0.1-10.7.0.2 outside spec.subnet 10.6.0.0/16'],
    ['excludeIPs outside the subnet', { excludeIPs: ['10.8.0.1'] }, 'spec.excludeIPs: 10.8.0.1 outside spec.subnet 10.6.0.0/16'],
    ['a gateway outside the subnet', { gateway: '10.9.0.1' }, 'spec.gateway: 10.9.0.1 is outside spec.subnet 10.6.0.0/16'],
    ['a gateway inside ips', { gateway: '10.6.1.7' }, 'spec.gateway: 10.6.1.7 is also in spec.ips; the gateway is never allocated'],
    ['a route gw outside the subnet', { routes: [{ dst: '172.16.0.0/12', gw: '10.9.0.1' }] }, 'spec.routes[0].gw: 10.9.0.1 is outside spec.subnet'],
    ['a default route', { routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }] }, 'spec.routes[0].dst: 0.0.0.0/0 is a default route'],
    ['a default route without a gateway', { gateway: undefined, defaultRoute: true }, 'spec.defaultRoute: a default route needs spec.gateway'],
    ['a duplicate route', { routes: [{ dst: '172.16.0.0/12', gw: '10.6.0.1' }, { dst: '172.16.0.0/12', gw: '10.6.0.2' }] }, 'spec.routes[1].dst: 172.16.0.0/12 appears twice'],
    ['a reversed range', { ips: ['10.6.1.9-10.6.1.1'] }, 'spec.ips: "10.6.1.9-10.6.1.1" ends before it starts'],
    ['the wrong ipVersion', { ipVersion: 6 }, 'spec.ipVersion: 6 does not match spec.subnet 10.6.0.0/16, which is IPv4'],
    ['a subnet with host bits', { subnet: '10.6.0.5/16' }, 'spec.subnet: "10.6.0.5/16" has host bits set'],
  ])('rejects %s', (_name, change, message) => {
    expect(specProblems({ ...base, ...change }).join('\n')).toContain(message);
  });

  it('accepts a pool that says its gateway gives no default route, or a pool without one that says so', () => {
    expect(specProblems({ ...base, gateway: '10.6.0.1', defaultRoute: false })).toEqual([]);
    expect(specProblems({ ...base, gateway: undefined, defaultRoute: false })).toEqual([]);
  });

  it('accepts the gateway inside ips when excludeIPs removes it', () => {
    expect(specProblems({ ...base, gateway: '10.6.1.7', excludeIPs: ['10.6.1.7'] })).toEqual([]);
  });
});

describe('overlapProblems', () => {
  const others = [pool('b', { subnet: '10.6.0.0/16', ips: ['10.6.1.90-10.6.1.120'] }), pool('c', { subnet: '10.7.0.0/24', ips: ['10.7.0.1'] })];

  it('rejects IPs shared with a pool of the same subnet, and a subnet overlapping another', () => {
    expect(overlapProblems(pool('a', base), others)).toEqual(['spec.ips: 10.6.1.90-10.6.1.100 also in IPPool b']);
    expect(overlapProblems(pool('a', { subnet: '10.7.0.0/16', ips: ['10.7.5.1'] }), others)).toEqual([
      "spec.subnet: 10.7.0.0/16 overlaps IPPool c's subnet 10.7.0.0/24",
    ]);
  });

  it('accepts disjoint IPs of one subnet, other subnets, other families, and the pool itself', () => {
    expect(overlapProblems(pool('a', { ...base, ips: ['10.6.1.1-10.6.1.89'] }), others)).toEqual([]);
    expect(overlapProblems(pool('a', { subnet: '10.8.0.0/24', ips: ['10.8.0.1'] }), others)).toEqual([]);
    expect(overlapProblems(pool('b', { subnet: '10.6.0.0/16', ips: ['10.6.1.90'] }), others)).toEqual([]);
  });
});

describe('updateProblems', () => {
  const held = pool('a', { ...base, ipVersion: 4 }, { allocatedIPs: { '10.6.1.5': { pod: 'ns/web-0', podUID: 'u' }, '10.6.1.99': { pod: 'ns/web-1', podUID: 'v' } } });

  it('keeps subnet and ipVersion immutable', () => {
    expect(updateProblems(held, pool('a', { ...held.spec, subnet: '10.6.0.0/17' }))).toContain('spec.subnet: immutable, cannot change from 10.6.0.0/16 to 10.6.0.0/17');
    expect(updateProblems(held, pool('a', { ...held.spec, ipVersion: 6 }))).toContain('spec.ipVersion: immutable, cannot change from 4 to 6');
  });

  it('refuses to remove an allocated IP, naming the IPs and their pods, and allows removing free ones', () => {
    expect(updateProblems(held, pool('a', { ...held.spec, ips: ['10.6.1.1-10.6.1.50'] }))).toEqual([
      'spec.ips: the update removes allocated IPs: 10.6.1.99 (held by ns/web-1)',
    ]);
    expect(updateProblems(held, pool('a', { ...held.spec, excludeIPs: ['10.6.1.5'] }))[0]).toContain('10.6.1.5 (held by ns/web-0)');
    expect(updateProblems(held, pool('a', { ...held.spec, ips: ['10.6.1.5', '10.6.1.99'] }))).toEqual([]);
  });

  it('refuses any spec change of a terminating pool, and lets its finalizer go', () => {
    const deleting = { ...held, metadata: { ...held.metadata, deletionTimestamp: new Date(), finalizers: ['tidepool.dev/ip-protection'] } };
    expect(updateProblems(deleting, pool('a', { ...held.spec, ips: ['10.6.1.1-10.6.1.200'] }))).toEqual([
      'IPPool a is being deleted; its spec cannot change (its status still can)',
    ]);
    expect(updateProblems(deleting, { ...deleting, metadata: { ...deleting.metadata, finalizers: [] }, spec: { ...held.spec } })).toEqual([]);
  });
});

describe('deleteProblem', () => {
  it('refuses to delete a pool with allocated IPs, with the count and the first holders, unless switched off', () => {
    const records = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`10.6.1.${i + 1}`, { pod: `ns/p-${i}`, podUID: `u${i}` }]));
    const busy = pool('a', base, { allocatedIPs: records });
    expect(deleteProblem(busy, true)).toBe(
      'IPPool a has 7 allocated IPs, first 10.6.1.1 (ns/p-0), 10.6.1.2 (ns/p-1), 10.6.1.3 (ns/p-2), 10.6.1.4 (ns/p-3), 10.6.1.5 (ns/p-4); delete or move those pods first',
    );
    expect(deleteProblem(busy, false)).toBeUndefined();
    expect(deleteProblem(pool('a', base), true)).toBeUndefined();
  });
});

describe('reservedIPProblems', () => {
  const reserved = (ips: string[], ipVersion?: 4 | 6): ReservedIP => ({
    apiVersion: 'tidepool.dev/v1alpha1',
    kind: 'ReservedIP',
    metadata: { name: 'r' },
    spec: { ips, ...(ipVersion ? { ipVersion } : {}) },
  });

  it('accepts ranges of one family and rejects mixed families, bad ranges and a wrong ipVersion', () => {
    expect(reservedIPProblems(reserved(['10.6.1.1-10.6.1.9', '10.6.2.1'], 4))).toEqual([]);
    expect(reservedIPProblems(reserved(['10.6.1.1', 'fd00::1']))).toEqual(['spec.ips: mixes IPv4 and IPv6; use one ReservedIP per family']);
    expect(reservedIPProblems(reserved(['10.6.1.9-10.6.1.1']))).toEqual(['spec.ips[0]: "10.6.1.9-10.6.1.1" ends before it starts']);
    expect(reservedIPProblems(reserved(['fd00::1'], 4))).toEqual(['spec.ipVersion: 4 does not match spec.ips, which are IPv6']);
    expect(reservedIPProblems(reserved(['bogus']))[0]).toContain('spec.ips[0]: "bogus"');
  });
});
