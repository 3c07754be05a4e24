import { describe, expect, it } from 'vitest';
import type { LifecycleSnapshot } from '../../src/contract/lifecycle.ts';
import { lifecycleCurrentDetails, lifecycleStaticDetails, lifecycleSummary } from '../../src/temporal/lifecycle-details.ts';

const allocated: LifecycleSnapshot = {
  namespace: 'shop',
  pod: 'web-0',
  podUID: '6f1c2a4e-0000-4000-8000-000000000001',
  node: 'node-3',
  ownerKind: 'StatefulSet',
  ownerName: 'web',
  state: 'Allocated',
  interfaces: {
    eth0: {
      containerID: 'c0ffee0123456789abcdef',
      ips: [
        { ip: '10.6.168.131', address: '10.6.168.131/16', version: 4, pool: 'underlay-v4', gateway: '10.6.0.1' },
        { ip: 'fd00::83', address: 'fd00::83/64', version: 6, pool: 'underlay-v6' },
      ],
    },
    net1: { containerID: 'c0ffee0123456789abcdef', ips: [{ ip: '172.20.0.9', address: '172.20.0.9/24', version: 4, pool: 'storage' }] },
  },
  ipsEverHeld: ['10.6.168.131', 'fd00::83', '172.20.0.9'],
  poolsEverUsed: ['underlay-v4', 'underlay-v6', 'storage'],
  lastReason: 'allocated from pod annotation',
  checkAt: Date.UTC(2026, 10, 22, 12, 0, 0),
};

describe('what the Temporal UI shows of a lifecycle', () => {
  it('summary names the pod', () => {
    expect(lifecycleSummary('shop', 'web-0')).toBe('IPs of pod shop/web-0');
  });

  it('static details: pod, UID, the node it was started on and what started it, as a list', () => {
    expect(lifecycleStaticDetails({ namespace: 'shop', pod: 'web-0', podUID: 'u-1', node: 'node-3', startedBy: 'CNI ADD of container abc on interface eth0' })).toBe(
      ['- **pod**: shop/web-0', '- **pod UID**: u-1', '- **started on node**: node-3', '- **started by**: CNI ADD of container abc on interface eth0'].join('\n'),
    );
    expect(lifecycleStaticDetails({ namespace: 'shop', pod: 'web_0', podUID: 'u-1', startedBy: 'GC sweep' })).toContain('- **pod**: shop/web\\_0\n- **pod UID**: u-1\n- **started on node**: —');
  });

  it('current details: state and reason, one list item per IP with interface, pool, gateway and short container ID', () => {
    const details = lifecycleCurrentDetails(allocated);
    expect(details.split('\n\n')).toEqual([
      '**Allocated**: allocated from pod annotation',
      [
        '- **eth0**: 10.6.168.131/16, pool underlay-v4, gateway 10.6.0.1, container c0ffee012345',
        '- **eth0**: fd00::83/64, pool underlay-v6, gateway —, container c0ffee012345',
        '- **net1**: 172.20.0.9/24, pool storage, gateway —, container c0ffee012345',
      ].join('\n'),
      'pod UID 6f1c2a4e-0000-4000-8000-000000000001, node node-3, owner StatefulSet web',
      'IPs ever held: 10.6.168.131, fd00::83, 172.20.0.9 (pools underlay-v4, underlay-v6, storage)',
      'Judges the pod again at 2026-11-22T12:00:00.000Z.',
    ]);
  });

  it('a lifecycle that holds nothing says so and keeps its history of IPs', () => {
    const released = lifecycleCurrentDetails({ ...allocated, state: 'Released', lastReason: 'CNI DEL', interfaces: {}, checkAt: undefined });
    expect(released).toContain('**Released**: CNI DEL\n\nHolds no IP.');
    expect(released).toContain('IPs ever held: 10.6.168.131');
    expect(released).not.toContain('Judges the pod again');
  });

  it('text from an error message cannot break the Markdown', () => {
    const details = lifecycleCurrentDetails({ ...allocated, state: 'Failed', interfaces: {}, lastReason: 'pool `a|b` <script>\nnext *line*' });
    expect(details.split('\n\n')[0]).toBe('**Failed**: pool \\`a\\|b\\` \\<script\\> next \\*line\\*');
  });
});
