import { describe, expect, it } from 'vitest';
import { heldReservedIPs, reservedSets } from '../../src/ipam/reserved.ts';
import type { IPPool, ReservedIP } from '../../src/k8s/types.ts';

const reservation = (name: string, ips: string[], deleting = false): ReservedIP => ({
  apiVersion: 'tidepool.dev/v1alpha1',
  kind: 'ReservedIP',
  metadata: { name, ...(deleting ? { deletionTimestamp: new Date() } : {}) },
  spec: { ips },
});
const pool = (name: string, subnet: string, held: Record<string, string>): IPPool => ({
  apiVersion: 'tidepool.dev/v1alpha1',
  kind: 'IPPool',
  metadata: { name },
  spec: { subnet, ips: [] },
  status: { allocatedIPs: Object.fromEntries(Object.entries(held).map(([ip, pod]) => [ip, { pod, podUID: `uid-${pod}` }])) },
});

describe('reservedSets', () => {
  it('unions every reservation per family and skips one being deleted and a range mixing families', () => {
    const sets = reservedSets([
      reservation('a', ['10.6.0.1-10.6.0.3', 'fd00::1']),
      reservation('b', ['10.6.0.3-10.6.0.5', '10.6.0.9-fd00::9']),
      reservation('gone', ['10.6.0.7'], true),
    ]);
    expect(sets[4].toStrings()).toEqual(['10.6.0.1-10.6.0.5']);
    expect(sets[6].toStrings()).toEqual(['fd00::1']);
  });
});

describe('heldReservedIPs', () => {
  it('lists the reserved IPs that pods hold, in address order, with pool and pod, across pools and families', () => {
    const pools = [
      pool('p2', '10.6.0.0/16', { '10.6.0.10': 'ns/b', '10.6.0.2': 'ns/a', '10.6.0.99': 'ns/free' }),
      pool('p6', 'fd00::/64', { 'fd00::1': 'ns/c' }),
    ];
    expect(heldReservedIPs(reservation('r', ['10.6.0.1-10.6.0.10', 'fd00::1']), pools)).toEqual([
      { ip: '10.6.0.2', pool: 'p2', pod: 'ns/a', podUID: 'uid-ns/a' },
      { ip: '10.6.0.10', pool: 'p2', pod: 'ns/b', podUID: 'uid-ns/b' },
      { ip: 'fd00::1', pool: 'p6', pod: 'ns/c', podUID: 'uid-ns/c' },
    ]);
    expect(heldReservedIPs(reservation('r', ['10.7.0.1']), pools)).toEqual([]);
  });
});
