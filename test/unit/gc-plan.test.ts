import { describe, expect, it } from 'vitest';
import { planSweep, type ClusterSnapshot } from '../../src/gc/plan.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import type { LivePod } from '../../src/ipam/holders.ts';
import type { IPPool, PodEndpoint } from '../../src/k8s/types.ts';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const old = new Date(NOW - 3_600_000).toISOString();

const pool: IPPool = {
  apiVersion: 'tidepool.dev/v1alpha1',
  kind: 'IPPool',
  metadata: { name: 'pool-a', uid: 'pool-uid' },
  spec: { subnet: '10.7.0.0/24', ips: ['10.7.0.1-10.7.0.20'] },
  status: {
    reconciledUID: 'pool-uid',
    allocatedIPs: {
      '10.7.0.1': { pod: 'ns/recorded', podUID: 'uid-recorded', interface: 'eth0', allocatedAt: old },
      '10.7.0.2': { pod: 'ns/shared', podUID: 'uid-shared', interface: 'eth0', allocatedAt: old },
    },
  },
};

function pod(name: string, podIPs: string[], extra: Partial<LivePod> = {}): LivePod {
  return { pod: `ns/${name}`, uid: `uid-${name}`, node: 'node-1', podIPs, terminating: false, finished: false, ready: true, ...extra };
}

function endpoint(name: string, address: string): PodEndpoint {
  return {
    apiVersion: 'tidepool.dev/v1alpha1',
    kind: 'PodEndpoint',
    metadata: { name, namespace: 'ns', creationTimestamp: new Date(old) },
    status: { podUID: `uid-${name}`, ips: [{ interface: 'eth0', address, pool: 'pool-a', containerID: `c-${name}` }] },
  };
}

function snapshot(livePods: LivePod[], endpoints: PodEndpoint[]): ClusterSnapshot {
  return {
    pools: [pool],
    pods: new Map(livePods.map((p) => [p.pod, { uid: p.uid, phase: p.finished ? 'Succeeded' : 'Running', podIPs: [...p.podIPs], nodeName: 'node-1', ...(p.terminating ? { deletionTimestamp: NOW } : {}) }])),
    nodes: new Map([['node-1', { name: 'node-1', ready: true }]]),
    statefulSets: new Map(),
    endpoints,
    livePods,
  };
}

const plan = (s: ClusterSnapshot) => planSweep(s, RECLAIM_DEFAULTS.gc, NOW, () => Promise.resolve(false));

describe('planSweep: unrecorded IPs and conflicts', () => {
  it('reports an IP a live pod holds with no record, and a second live pod on a recorded IP, and changes no verdict', async () => {
    const report = await plan(
      snapshot(
        [pod('recorded', ['10.7.0.1']), pod('shared', ['10.7.0.2']), pod('intruder', ['10.7.0.2']), pod('lost', ['10.7.0.5'])],
        [endpoint('recorded', '10.7.0.1/24'), endpoint('lost', '10.7.0.5/24')],
      ),
    );
    expect(report.unrecorded.map((u) => [u.ip, u.pool, u.pod, u.source, u.containerID])).toEqual([['10.7.0.5', 'pool-a', 'ns/lost', 'PodEndpoint', 'c-lost']]);
    expect(report.conflicts).toEqual([{ ip: '10.7.0.2', pool: 'pool-a', holders: [{ pod: 'ns/shared', podUID: 'uid-shared' }, { pod: 'ns/intruder', podUID: 'uid-intruder' }] }]);
    expect(report.reclaims).toEqual([]);
    expect(report.kept).toEqual({ PodActive: 2 });
  });

  it('leaves out a terminating pod’s unrecorded IP (its release has just run) and a finished pod’s', async () => {
    const report = await plan(snapshot([pod('leaving', ['10.7.0.6'], { terminating: true }), pod('done', ['10.7.0.7'], { finished: true })], []));
    expect(report.unrecorded).toEqual([]);
    expect(report.conflicts).toEqual([]);
  });

  it('still sees a conflict with a terminating pod, which holds its IP until it is gone', async () => {
    const report = await plan(snapshot([pod('shared', ['10.7.0.2']), pod('leaving', ['10.7.0.2'], { terminating: true })], []));
    expect(report.conflicts.map((c) => c.holders.map((h) => h.pod))).toEqual([['ns/shared', 'ns/leaving']]);
  });

  it('ignores a restarted pod that still lists its old IP while not ready: no conflict with the IP’s new holder, nothing to record', async () => {
    // The node lost power; its kubelet reports the pod not ready, DELs the dead sandbox (the IP goes back to the
    // pool and to another pod) and only then writes the new sandbox's podIPs.
    const report = await plan(snapshot([pod('shared', ['10.7.0.2']), pod('restarted', ['10.7.0.2', '10.7.0.9'], { ready: false })], []));
    expect(report.conflicts).toEqual([]);
    expect(report.unrecorded).toEqual([]);
  });
});
