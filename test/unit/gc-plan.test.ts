import { describe, expect, it } from 'vitest';
import { planSweep, type ClusterSnapshot } from '../../src/gc/plan.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import type { LivePod } from '../../src/ipam/holders.ts';
import type { SweepScope } from '../../src/contract/pools.ts';
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

describe('planSweep: stale records and aimed sweeps', () => {
  const withRecords = (records: NonNullable<IPPool['status']>['allocatedIPs'], name = 'pool-a'): IPPool => ({
    ...pool,
    metadata: { name, uid: `${name}-uid` },
    status: { reconciledUID: `${name}-uid`, allocatedIPs: records },
  });

  it('reclaims a live pod’s stale second record on its own, never with the IP the pod uses', async () => {
    const records = {
      '10.7.0.1': { pod: 'ns/recorded', podUID: 'uid-recorded', interface: 'eth0', containerID: 'c-recorded', allocatedAt: old },
      '10.7.0.3': { pod: 'ns/recorded', podUID: 'uid-recorded', interface: 'eth0', containerID: 'c-earlier', allocatedAt: old },
    };
    const report = await plan({ ...snapshot([pod('recorded', ['10.7.0.1'])], [endpoint('recorded', '10.7.0.1/24')]), pools: [withRecords(records)] });
    expect(report.reclaims).toEqual([{ namespace: 'ns', pod: 'recorded', podUID: 'uid-recorded', reason: 'StaleRecord', ips: [{ ip: '10.7.0.3', pool: 'pool-a' }] }]);
    expect(report.kept).toEqual({ PodActive: 1 });
    expect(report.reclaimed).toEqual({ StaleRecord: 1 });
  });

  it('judges only the named pools’ and namespaces’ records, and says what it was aimed at', async () => {
    const gone = (name: string, namespace = 'ns') => ({ pod: `${namespace}/${name}`, podUID: `uid-${name}`, interface: 'eth0', allocatedAt: old });
    const a = withRecords({ '10.7.0.1': gone('a1'), '10.7.0.2': gone('a2', 'other') }, 'pool-a');
    const b = withRecords({ '10.7.0.3': gone('b1') }, 'pool-b');
    const all = { ...snapshot([], []), pools: [a, b] };
    const pods = (r: Awaited<ReturnType<typeof plan>>) => r.reclaims.map((g) => `${g.namespace}/${g.pod}`).sort();
    expect(pods(await plan(all))).toEqual(['ns/a1', 'ns/b1', 'other/a2']);
    const aimed = (scope: SweepScope) => planSweep(all, RECLAIM_DEFAULTS.gc, NOW, () => Promise.resolve(false), scope);
    const onlyA = await aimed({ pools: ['pool-a'] });
    expect([pods(onlyA), onlyA.scanned.records, onlyA.scope]).toEqual([['ns/a1', 'other/a2'], 2, { pools: ['pool-a'] }]);
    expect(pods(await aimed({ namespaces: ['other'] }))).toEqual(['other/a2']);
    expect(pods(await aimed({ pools: ['pool-b'], namespaces: ['other'] }))).toEqual([]);
    expect((await plan(all)).scope).toBeUndefined();
  });
});

describe('planSweep: a worker’s namespace selector', () => {
  it('leaves the existing namespaces outside it alone, and judges the records of a namespace that is gone', async () => {
    const gone = (pod: string) => ({ pod, podUID: `uid-${pod}`, interface: 'eth0', allocatedAt: old });
    const scoped: IPPool = { ...pool, status: { reconciledUID: 'pool-uid', allocatedIPs: { '10.7.0.1': gone('mine/a'), '10.7.0.2': gone('theirs/b'), '10.7.0.3': gone('deleted/c') } } };
    const report = await planSweep({ ...snapshot([], []), pools: [scoped] }, RECLAIM_DEFAULTS.gc, NOW, () => Promise.resolve(false), { excludeNamespaces: ['theirs'] });
    expect(report.reclaims.map((r) => `${r.namespace}/${r.pod}`).sort()).toEqual(['deleted/c', 'mine/a']);
  });
});
