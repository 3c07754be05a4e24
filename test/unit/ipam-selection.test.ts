import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IPPool, IPPoolSpec } from '../../src/k8s/types.ts';
import { choosePools, matchesSelector, PoolSelectionError, type SelectionInput } from '../../src/ipam/selection.ts';

function pool(name: string, spec: Partial<IPPoolSpec> & { subnet: string }, deleting = false): IPPool {
  return {
    apiVersion: 'tidepool.dev/v1alpha1',
    kind: 'IPPool',
    metadata: { name, ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { ips: [], ...spec },
  };
}

const pools = [
  pool('v4-a', { subnet: '10.6.0.0/16' }),
  pool('v4-b', { subnet: '10.7.0.0/16' }),
  pool('v6-a', { subnet: 'fd00:6::/64' }),
  pool('v4-default', { subnet: '10.8.0.0/16', default: true }),
  pool('v6-default', { subnet: 'fd00:8::/64', default: true }),
  pool('v4-off', { subnet: '10.9.0.0/16', disable: true }),
  pool('v4-gone', { subnet: '10.10.0.0/16' }, true),
  pool('v4-rack1', { subnet: '10.11.0.0/16', nodeAffinity: { matchLabels: { rack: 'r1' } } }),
  pool('v4-team', { subnet: '10.12.0.0/16', namespaceName: ['team'] }),
  pool('v4-db', { subnet: '10.13.0.0/16', podAffinity: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] } }),
];

function input(overrides: Partial<SelectionInput> = {}, annotations: Record<string, string> = {}): SelectionInput {
  return {
    pod: { namespace: 'default', name: 'web-0', labels: { app: 'web' }, annotations },
    namespace: { labels: {}, annotations: {} },
    node: { name: 'node-1', labels: { rack: 'r2' } },
    interface: 'eth0',
    defaultPools: {},
    pools,
    ...overrides,
  };
}

describe('choosePools', () => {
  it('takes the multi-NIC entry for the interface first, then the pod annotation', () => {
    const annotations = {
      'ipam.tidepool.dev/ippools': JSON.stringify([{ interface: 'net1', ipv4: ['v4-b'] }, { interface: 'eth0', ipv6: ['v6-a'] }]),
      'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: ['v4-a'] }),
    };
    expect(choosePools(input({ interface: 'net1' }, annotations)).pools).toEqual({ 4: ['v4-b'] });
    expect(choosePools(input({ interface: 'eth0' }, annotations)).pools).toEqual({ 6: ['v6-a'] });
    expect(choosePools(input({ interface: 'net2' }, annotations))).toEqual({
      source: 'pod annotation ipam.tidepool.dev/ippool',
      pools: { 4: ['v4-a'] },
    });
  });

  it('then the namespace defaults, then the CNI netconf defaults, then the default pools', () => {
    const nsDefaults = { labels: {}, annotations: { 'ipam.tidepool.dev/default-ipv4-ippool': '["v4-b"]', 'ipam.tidepool.dev/default-ipv6-ippool': 'v6-a' } };
    expect(choosePools(input({ namespace: nsDefaults, defaultPools: { ipv4: ['v4-a'] } })).pools).toEqual({ 4: ['v4-b'], 6: ['v6-a'] });
    expect(choosePools(input({ defaultPools: { ipv4: ['v4-a'] } })).pools).toEqual({ 4: ['v4-a'] });
    expect(choosePools(input())).toEqual({ source: 'default pools (spec.default)', pools: { 4: ['v4-default'], 6: ['v6-default'] } });
  });

  it('skips unusable named pools and keeps the order of the rest', () => {
    const annotations = { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: ['missing', 'v4-off', 'v4-b', 'v4-gone', 'v4-a'] }) };
    expect(choosePools(input({}, annotations)).pools).toEqual({ 4: ['v4-b', 'v4-a'] });
  });

  it('says why each named pool was refused when none is usable', () => {
    const annotations = { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: ['missing', 'v4-off', 'v6-a', 'v4-gone', 'v4-rack1', 'v4-team', 'v4-db'] }) };
    const error = (() => {
      try {
        choosePools(input({}, annotations));
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(error).toBeInstanceOf(PoolSelectionError);
    expect(error.message).toBe(
      'no usable IPv4 pool for pod default/web-0 from pod annotation ipam.tidepool.dev/ippool: pool missing does not exist; ' +
        'pool v4-off is disabled; pool v6-a is IPv6, not IPv4; pool v4-gone is being deleted; ' +
        'pool v4-rack1 does not match node node-1 (spec.nodeAffinity); pool v4-team does not serve namespace default (spec.namespaceName); ' +
        'pool v4-db does not match the pod (spec.podAffinity)',
    );
  });

  it('honours node, namespace and pod affinity when they match', () => {
    const annotations = { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: ['v4-rack1', 'v4-team', 'v4-db'] }) };
    const matching = input(
      { pod: { namespace: 'team', name: 'db-0', labels: { app: 'db' }, annotations }, node: { name: 'n', labels: { rack: 'r1' } } },
    );
    expect(choosePools(matching).pools).toEqual({ 4: ['v4-rack1', 'v4-team', 'v4-db'] });
  });

  it.each([
    ['{"ipv4": "v4-a"}', 'pod annotation ipam.tidepool.dev/ippool.ipv4 must be a list of pool names, got "v4-a"'],
    ['{ipv4: [v4-a]}', 'pod annotation ipam.tidepool.dev/ippool is not valid JSON'],
    ['{"v4": ["v4-a"]}', 'pod annotation ipam.tidepool.dev/ippool has unknown field(s) v4'],
    ['["v4-a"]', 'pod annotation ipam.tidepool.dev/ippool must be an object like {"ipv4":["pool-a"],"ipv6":["pool-b"]}'],
  ])('explains a malformed pod annotation %s', (text, message) => {
    expect(() => choosePools(input({}, { 'ipam.tidepool.dev/ippool': text }))).toThrow(message);
  });

  it('explains a malformed multi-NIC annotation', () => {
    const twice = JSON.stringify([{ interface: 'net1', ipv4: ['v4-a'] }, { interface: 'net1', ipv4: ['v4-b'] }]);
    expect(() => choosePools(input({}, { 'ipam.tidepool.dev/ippools': twice }))).toThrow('names interface net1 twice');
    expect(() => choosePools(input({}, { 'ipam.tidepool.dev/ippools': '[{"ipv4":["v4-a"]}]' }))).toThrow(
      'ipam.tidepool.dev/ippools[0].interface must name an interface',
    );
  });

  it('tells the operator how to name a pool when nothing names one', () => {
    const noDefaults = pools.filter((p) => !p.spec.default);
    expect(() => choosePools(input({ pools: noDefaults }))).toThrow(
      /no IPPool for pod default\/web-0: annotate the pod with ipam.tidepool.dev\/ippool/,
    );
  });

  it('only ever returns existing, usable pools of the requested family, or throws PoolSelectionError', () => {
    const names = pools.map((p) => p.metadata.name).concat(['missing']);
    fc.assert(
      fc.property(fc.subarray(names), fc.subarray(names), (v4, v6) => {
        const annotations = { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: v4, ipv6: v6 }) };
        try {
          const choice = choosePools(input({}, annotations));
          for (const [family, chosen] of Object.entries(choice.pools)) {
            for (const name of chosen) {
              const p = pools.find((x) => x.metadata.name === name)!;
              expect(p.spec.subnet.includes(':') ? '6' : '4').toBe(family);
              expect(p.spec.disable || p.metadata.deletionTimestamp).toBeFalsy();
            }
          }
        } catch (error) {
          expect(error).toBeInstanceOf(PoolSelectionError);
        }
      }),
    );
  });
});

describe('matchesSelector', () => {
  it.each([
    [{ matchLabels: { a: '1' } }, { a: '1', b: '2' }, true],
    [{ matchLabels: { a: '1' } }, { a: '2' }, false],
    [{ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}, true],
    [{ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, {}, false],
    [{ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: 'x' }, false],
    [{ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, { a: 'x' }, false],
    [undefined, undefined, true],
  ])('%j on %j is %s', (selector, labels, expected) => {
    expect(matchesSelector(selector, labels)).toBe(expected);
  });
});
