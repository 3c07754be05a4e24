import { describe, expect, it } from 'vitest';
import { planRuntimeGc } from '../../src/gc/runtime-gc.ts';
import type { AllocationRecord, IPPool } from '../../src/k8s/types.ts';

const now = Date.parse('2026-12-01T12:00:00Z');
const old = '2026-12-01T11:00:00Z';
const young = '2026-12-01T11:59:50Z';

function pool(name: string, records: Record<string, Partial<AllocationRecord>>): IPPool {
  const allocatedIPs = Object.fromEntries(
    Object.entries(records).map(([ip, record]) => [
      ip,
      { pod: 'ns/web-0', podUID: 'uid-0', containerID: 'c0', interface: 'eth0', node: 'node-a', network: 'underlay', allocatedAt: old, ...record },
    ]),
  );
  return { apiVersion: 'tidepool.dev/v1alpha1', kind: 'IPPool', metadata: { name }, spec: { subnet: '10.6.0.0/16', ips: [] }, status: { allocatedIPs } };
}

const input = { network: 'underlay', node: 'node-a', validAttachments: [{ containerID: 'c0', interface: 'eth0' }] };

describe('planRuntimeGc', () => {
  it('finds exactly the unlisted attachments of this network on this node, with every record of each', () => {
    const pools = [
      pool('v4', {
        '10.6.0.1': {},
        '10.6.0.2': { pod: 'ns/web-1', podUID: 'uid-1', containerID: 'c1' },
        '10.6.0.3': { pod: 'ns/web-2', podUID: 'uid-2', containerID: 'c2', node: 'node-b' },
        '10.6.0.4': { pod: 'ns/web-3', podUID: 'uid-3', containerID: 'c3', network: 'other' },
        '10.6.0.5': { pod: 'ns/web-4', podUID: 'uid-4', containerID: 'c4', network: undefined },
        '10.6.0.6': { pod: 'ns/web-0', podUID: 'uid-0', containerID: 'c0', interface: 'net1' },
      }),
      pool('v6', { 'fd00::2': { pod: 'ns/web-1', podUID: 'uid-1', containerID: 'c1' } }),
    ];
    const plan = planRuntimeGc(pools, input, 60_000, now);
    expect(plan.stale).toEqual([
      {
        namespace: 'ns',
        pod: 'web-1',
        podUID: 'uid-1',
        containerID: 'c1',
        interface: 'eth0',
        ips: [
          { ip: '10.6.0.2', pool: 'v4' },
          { ip: 'fd00::2', pool: 'v6' },
        ],
      },
      { namespace: 'ns', pod: 'web-0', podUID: 'uid-0', containerID: 'c0', interface: 'net1', ips: [{ ip: '10.6.0.6', pool: 'v4' }] },
    ]);
    expect(plan).toMatchObject({ tooYoung: 0, allocatedBefore: now - 60_000 });
  });

  it('leaves an attachment alone while any of its records is younger than the minimum record age', () => {
    const pools = [pool('v4', { '10.6.0.2': { containerID: 'c1', allocatedAt: young }, '10.6.0.3': { containerID: 'c1', interface: 'eth0', allocatedAt: old } })];
    expect(planRuntimeGc(pools, input, 60_000, now)).toMatchObject({ stale: [], tooYoung: 1 });
    expect(planRuntimeGc(pools, input, 5_000, now).stale).toHaveLength(1);
  });

  it('frees nothing when every attachment is listed', () => {
    expect(planRuntimeGc([pool('v4', { '10.6.0.1': {} })], input, 0, now)).toMatchObject({ stale: [], tooYoung: 0 });
  });
});
