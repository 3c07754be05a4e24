import { randomBytes } from 'node:crypto';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type V1PodSpec } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import type { SweepReport } from '../../src/gc/plan.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { stateQuery } from '../../src/contract/lifecycle.ts';
import { createNamespace, createPodWithPool, createWorkload, deletePools, kubeConfig, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const id = () => randomBytes(32).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
const poolNames: string[] = [];

async function createPool(suffix: string, ips: string[]): Promise<string> {
  const name = `${suffix}-${tag}`;
  await pools().createPool(name, { subnet: '10.90.0.0/16', ips });
  poolNames.push(name);
  return name;
}

const createPod = (name: string, pool: string, spec: Partial<V1PodSpec> = {}) => createPodWithPool(namespace.name, name, pool, spec);

const allocated = async (pool: string) => Object.keys((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).length;

beforeAll(async () => {
  namespace = await createNamespace('reclaim');
  tidepool = await startTidepool({ controller: true });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools(poolNames);
});

describe('(a) a pod deleted while its CNI DEL never comes', () => {
  it('gets its IPs back through the event path within 10 s of the pod object disappearing, with no sweep', async () => {
    const pool = await createPool('event', ['10.90.1.1-10.90.1.10']);
    const pods = [];
    for (let i = 0; i < 5; i++) pods.push(await createPod(`gone-${i}`, pool));
    for (const pod of pods) expect((await runCni('ADD', cniEnv(pod, id()), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);
    expect(await allocated(pool)).toBe(5);

    for (const pod of pods) await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 0 });
    await waitFor('the pods to be gone', async () => (await core().listNamespacedPod({ namespace: namespace.name })).items.length === 0);
    const gone = Date.now();
    await waitFor('every IP of the deleted pods to be reclaimed', async () => (await allocated(pool)) === 0, 10_000);
    expect(Date.now() - gone).toBeLessThanOrEqual(10_000);

    await waitFor('the PodEndpoints to go', async () => (await pools().listPodEndpoints(namespace.name)).length === 0);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'gone-0'));
    const result = await handle.result();
    expect([result.state, result.releaseReason]).toEqual(['Reclaimed', 'PodNotFound']);
    const signals = (await handle.fetchHistory()).events!.filter((e) => e.workflowExecutionSignaledEventAttributes).map((e) => e.workflowExecutionSignaledEventAttributes!.signalName);
    expect(signals).toContain('podEvent');
    expect(await tidepool.metrics.registry.getSingleMetricAsString('tidepool_reclaims_total')).toContain('tidepool_reclaims_total{reason="PodNotFound"} 5');
  });
});

describe('(a2) a pod whose sandbox was torn down (its IPs kept for the next sandbox), then deleted with no further DEL', () => {
  it('gets its IPs back through the event path, as a pod whose DEL never came', async () => {
    const pool = await createPool('kept', ['10.90.1.20-10.90.1.21']);
    const pod = await createPod('kept-then-gone', pool);
    const container = id();
    const conf = netconf(tidepool.socketPath, tidepool.spoolDir);
    expect((await runCni('ADD', cniEnv(pod, container), conf)).code).toBe(0);
    expect((await runCni('DEL', cniEnv(pod, container), conf)).code).toBe(0);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, pod.name));
    expect((await handle.query(stateQuery)).interfaces['eth0']?.detachedAt).toBeTypeOf('number');
    expect(await allocated(pool)).toBe(1);

    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 0 });
    await waitFor('the kept IP to be reclaimed', async () => (await allocated(pool)) === 0, 10_000);
    const result = await handle.result();
    expect([result.state, result.releaseReason]).toEqual(['Reclaimed', 'PodNotFound']);
  });
});

describe('(b) a node that breaks down and never comes back', () => {
  const tolerations = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'].map((key) => ({
    key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 0,
  }));

  async function heartbeat(name: string): Promise<void> {
    const now = new Date();
    await core().patchNodeStatus(
      { name, body: { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: now, lastTransitionTime: now }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async function readyNode(name: string): Promise<void> {
    await core().createNode({ body: { metadata: { name } } });
    await heartbeat(name);
  }

  it('reclaims its pods’ IPs at deletionTimestamp (eviction + grace) + the extra delay, not before and within 5 s, and keeps them with the NotReady switch off', async () => {
    const delay = RECLAIM_DEFAULTS.gc.additionalGraceDelayMs;
    const switchOff = await startTidepool({ controller: true, settings: { gc: { ...RECLAIM_DEFAULTS.gc, reclaimTerminatingOnNotReadyNode: false } } });
    // With more than two nodes NotReady and at least 55 % of the zone, the node-lifecycle controller suspects a
    // partial disruption and (in a cluster this small) evicts nothing; a real cluster has healthy nodes beside
    // the dead ones, and so does this test, enough of them for a node another test left behind as well.
    const healthy = [0, 1, 2].map((i) => `alive-${i}-${tag}`);
    for (const name of healthy) await readyNode(name);
    const beating = setInterval(() => healthy.forEach((name) => void heartbeat(name).catch(() => undefined)), 3000);
    try {
      const nodeOn = `dead-on-${tag}`;
      const nodeOff = `dead-off-${tag}`;
      await readyNode(nodeOn);
      await readyNode(nodeOff);
      const pool = await createPool('dead', ['10.90.2.1-10.90.2.10']);
      const on = await createPod('on-dead-node', pool, { nodeName: nodeOn, terminationGracePeriodSeconds: 10, tolerations });
      const off = await createPod('on-dead-node-kept', pool, { nodeName: nodeOff, terminationGracePeriodSeconds: 10, tolerations });
      expect((await runCni('ADD', cniEnv(on, id()), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);
      expect((await runCni('ADD', cniEnv(off, id()), netconf(switchOff.socketPath, switchOff.spoolDir))).code).toBe(0);
      const holders = async () => Object.values((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).map((r) => r.pod.split('/')[1]);

      // No more heartbeats: the node-lifecycle controller marks the nodes NotReady, taint eviction deletes the pods.
      let deletion = 0;
      await waitFor('the real controllers to evict the pod from its dead node', async () => {
        const pod = await core().readNamespacedPod({ namespace: namespace.name, name: on.name });
        deletion = pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : 0;
        return deletion > 0;
      }, 90_000);
      // The deletionTimestamp is the eviction plus the 10 s grace; only the extra delay follows it.
      const reclaimable = deletion + delay;
      if (Date.now() < reclaimable - 1000) expect(await holders()).toContain(on.name);

      await waitFor('the dead node’s pod IP to be reclaimed', async () => !(await holders()).includes(on.name), 60_000);
      expect(Date.now()).toBeGreaterThanOrEqual(reclaimable);
      expect(Date.now()).toBeLessThanOrEqual(reclaimable + 5_000);
      const result = await tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, on.name)).result();
      expect([result.state, result.releaseReason]).toEqual(['Reclaimed', 'TerminatingOnNotReadyNode']);

      // The node-lifecycle controller taints one node at a time (0.1 nodes/s), so the second may lag.
      let offDeletion = 0;
      await waitFor('the real controllers to evict the other dead node’s pod', async () => {
        const pod = await core().readNamespacedPod({ namespace: namespace.name, name: off.name });
        offDeletion = pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : 0;
        return offDeletion > 0;
      }, 90_000);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, offDeletion + delay + 5_000 - Date.now())));
      expect(await holders()).toEqual([off.name]);
      const kept = await switchOff.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, off.name)).describe();
      expect(kept.status.name).toBe('RUNNING');
    } finally {
      clearInterval(beating);
      await switchOff.stop();
      for (const name of [`dead-on-${tag}`, `dead-off-${tag}`, ...healthy]) await core().deleteNode({ name }).catch(() => undefined);
    }
  });
});

const apps = () => kubeConfig().makeApiClient(AppsV1Api);
const podsOf = async (label: string) => (await core().listNamespacedPod({ namespace: namespace.name, labelSelector: `app=${label}` })).items;
const conf = () => netconf(tidepool.socketPath, tidepool.spoolDir);

describe('StatefulSet pods whose CNI DEL never comes', () => {
  it('keep their IP across re-creation while the ordinal is wanted, even through a sweep; after a scale-down it is reclaimed', async () => {
    const pool = await createPool('sts', ['10.90.3.1-10.90.3.5']);
    await createWorkload('StatefulSet', namespace.name, 'db', 1, pool);
    const current = async () => {
      const [pod] = await podsOf('db');
      return pod ? { namespace: namespace.name, name: pod.metadata!.name!, uid: pod.metadata!.uid! } : undefined;
    };
    await waitFor('db-0', async () => Boolean(await current()));
    const first = (await current())!;
    const ip = (await runCni('ADD', cniEnv(first, id()), conf())).json as { ips: { address: string }[] };
    const address = ip.ips[0]!.address;

    await core().deleteNamespacedPod({ namespace: namespace.name, name: 'db-0', gracePeriodSeconds: 0 });
    await waitFor('db-0 re-created', async () => ((await current())?.uid ?? first.uid) !== first.uid);
    const sweep = (await tidepool.client.workflow.execute('gcSweep', { taskQueue: tidepool.taskQueue, workflowId: `sts-sweep-${tag}`, args: [{ dryRun: false }] })) as SweepReport;
    expect(sweep.reclaims.filter((r) => r.namespace === namespace.name && r.pod === 'db-0')).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await allocated(pool)).toBe(1);

    const second = (await current())!;
    const again = (await runCni('ADD', cniEnv(second, id()), conf())).json as { ips: { address: string }[] };
    expect(again.ips[0]!.address).toBe(address);

    await apps().patchNamespacedStatefulSetScale({ namespace: namespace.name, name: 'db', body: [{ op: 'replace', path: '/spec/replicas', value: 0 }] });
    await waitFor('db-0 to be gone after the scale-down', async () => (await current()) === undefined);
    await waitFor('the scaled-down pod’s IP to be reclaimed', async () => (await allocated(pool)) === 0, 15_000);
    const result = await tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'db-0')).result();
    expect([result.state, result.releaseReason]).toEqual(['Reclaimed', 'StatefulSetScaledDown']);
  });
});

describe('a StatefulSet whose namespace is deleted, every CNI DEL dropped', () => {
  it('frees every IP and lets the namespace go within 30 s, through the StatefulSet’s deletion and no sweep', async () => {
    const doomed = await createNamespace('reclaim-sts-ns');
    const pool = await createPool('sts-ns', ['10.90.5.1-10.90.5.10']);
    const labels = { app: 'db' };
    await apps().createNamespacedStatefulSet({
      namespace: doomed.name,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 3,
          serviceName: 'db',
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: labels },
          template: {
            metadata: { labels, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
            spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
          },
        },
      },
    });
    const pods = async () => (await core().listNamespacedPod({ namespace: doomed.name })).items;
    await waitFor('the 3 StatefulSet pods', async () => (await pods()).length === 3);
    for (const pod of await pods()) {
      const ref = { namespace: doomed.name, name: pod.metadata!.name!, uid: pod.metadata!.uid! };
      expect((await runCni('ADD', cniEnv(ref, id()), conf())).code).toBe(0);
    }
    expect(await allocated(pool)).toBe(3);

    await core().deleteNamespace({ name: doomed.name });
    const deleted = Date.now();
    await waitFor('every IP of the StatefulSet to be free', async () => (await allocated(pool)) === 0, 30_000);
    await waitFor('the namespace to be gone', async () => {
      try {
        await core().readNamespace({ name: doomed.name });
        return false;
      } catch {
        return true;
      }
    }, Math.max(1, deleted + 30_000 - Date.now()));
    for (const ordinal of [0, 1, 2]) {
      const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(doomed.name, `db-${ordinal}`));
      const result = await handle.result();
      expect([result.state, result.releaseReason], `db-${ordinal}`).toEqual(['Reclaimed', 'StatefulSetDeleted']);
      // Only the controller's events: a sweep hands its reclaims over as `reclaim` signals.
      const signals = (await handle.fetchHistory()).events!.filter((e) => e.workflowExecutionSignaledEventAttributes).map((e) => e.workflowExecutionSignaledEventAttributes!.signalName);
      expect(new Set(signals)).toEqual(new Set(['podEvent']));
    }
  });
});

describe('a stale second record of a live pod (Spiderpool’s case: another container’s record for the pod UID)', () => {
  it('is reclaimed within the minimum record age plus a few seconds, with its reason in the pod’s history, and the pod keeps its IP', async () => {
    const minRecordAgeMs = 5_000;
    const aged = await startTidepool({ controller: true, settings: { gc: { ...RECLAIM_DEFAULTS.gc, minRecordAgeMs } } });
    try {
      const pool = await createPool('stale', ['10.90.6.1-10.90.6.10']);
      const pod = await createPod('stale-holder', pool);
      const added = await runCni('ADD', cniEnv(pod, id()), netconf(aged.socketPath, aged.spoolDir));
      const real = (added.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;

      const current = (await pools().getPool(pool))!;
      const stale = '10.90.6.9';
      const written = Date.now();
      await pools().replacePoolStatus({
        ...current,
        status: {
          ...current.status,
          allocatedIPs: {
            ...current.status!.allocatedIPs,
            [stale]: { pod: `${namespace.name}/${pod.name}`, podUID: pod.uid, containerID: id(), interface: 'eth0', allocatedAt: new Date(written).toISOString() },
          },
        },
      });
      await waitFor('the stale record to be reclaimed', async () => !(stale in ((await pools().getPool(pool))?.status?.allocatedIPs ?? {})), minRecordAgeMs + 10_000);
      expect(Date.now() - written).toBeGreaterThanOrEqual(minRecordAgeMs);
      expect(Date.now() - written).toBeLessThanOrEqual(minRecordAgeMs + 5_000);

      const records = (await pools().getPool(pool))!.status!.allocatedIPs!;
      expect(Object.keys(records)).toEqual([real]);
      const handle = aged.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, pod.name));
      const state = await handle.query(stateQuery);
      expect([state.state, state.releaseReason, Object.values(state.interfaces).flatMap((i) => i.ips.map((ip) => ip.ip))]).toEqual(['Allocated', 'StaleRecord', [real]]);
      expect(state.ipsEverHeld).toEqual([real, stale]);
      const history = (await handle.fetchHistory()).events!;
      const reclaim = history.find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'reclaim');
      const payload = reclaim?.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0]?.data;
      expect(payload && JSON.parse(Buffer.from(payload).toString())).toEqual({ podUID: pod.uid, reason: 'StaleRecord', ips: [{ ip: stale, pool }] });
      const markerText = (details: Record<string, { payloads?: { data?: Uint8Array | null }[] | null }> | null | undefined) =>
        Object.values(details ?? {}).flatMap((p) => p.payloads ?? []).map((p) => (p.data ? Buffer.from(p.data).toString() : '')).join(' ');
      const released = history.find((e) => markerText(e.markerRecordedEventAttributes?.details).includes('"releaseStaleRecords"'));
      expect(released, 'the releaseStaleRecords activity in the history').toBeDefined();
      expect(await aged.metrics.registry.getSingleMetricAsString('tidepool_reclaims_total')).toContain('tidepool_reclaims_total{reason="StaleRecord"} 1');
    } finally {
      await aged.stop();
    }
  });
});

describe('the seeds’ 1:1 case: a pool of N IPs for N pods', () => {
  it('gives all N replacements an IP after all N pods are deleted with CNI DEL suppressed, never one IP to two live pods', async () => {
    const n = 10;
    const pool = await createPool('one-to-one', [`10.90.4.1-10.90.4.${n}`]);
    await createWorkload('Deployment', namespace.name, 'web', n, pool);
    const started = new Map<string, string>();
    const violations: string[] = [];
    const sample = async () => {
      const live = new Set((await podsOf('web')).filter((p) => !p.metadata?.deletionTimestamp).map((p) => p.metadata!.uid!));
      const holders = new Map<string, string>();
      for (const endpoint of await pools().listPodEndpoints(namespace.name)) {
        if (!live.has(endpoint.status.podUID)) continue;
        for (const ip of endpoint.status.ips) {
          const other = holders.get(ip.address);
          if (other) violations.push(`${ip.address}: ${other} and ${endpoint.metadata.name}`);
          holders.set(ip.address, endpoint.metadata.name);
        }
      }
    };
    /** Starts every pod without an IP, as a kubelet retries a sandbox until its CNI ADD succeeds. */
    const startAll = async (deadline: number) => {
      while (Date.now() < deadline) {
        const pods = (await podsOf('web')).filter((p) => !p.metadata?.deletionTimestamp);
        const waiting = pods.filter((p) => !started.has(p.metadata!.uid!));
        if (pods.length === n && waiting.length === 0) return;
        await Promise.all(waiting.map(async (p) => {
          const ref = { namespace: namespace.name, name: p.metadata!.name!, uid: p.metadata!.uid! };
          const run = await runCni('ADD', cniEnv(ref, id()), conf());
          if (run.code === 0) started.set(ref.uid, (run.json as { ips: { address: string }[] }).ips[0]!.address);
        }));
        await sample();
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      throw new Error(`only ${started.size} pods got an IP before the deadline`);
    };
    await startAll(Date.now() + 60_000);
    expect(new Set(started.values()).size).toBe(n);

    const firstGeneration = new Set(started.keys());
    for (const pod of await podsOf('web')) await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.metadata!.name!, gracePeriodSeconds: 0 });
    await startAll(Date.now() + 60_000);
    const replacements = [...started.entries()].filter(([uid]) => !firstGeneration.has(uid));
    expect(replacements).toHaveLength(n);
    expect(new Set(replacements.map(([, address]) => address)).size).toBe(n);
    await sample();
    expect(violations).toEqual([]);
    expect(await allocated(pool)).toBe(n);
  });
});
