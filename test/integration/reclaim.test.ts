import { randomBytes } from 'node:crypto';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, kubeConfig, waitFor } from '../harness/cluster.ts';
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

async function createPod(name: string, pool: string, spec: Record<string, unknown> = {}) {
  const pod = await core().createNamespacedPod({
    namespace: namespace.name,
    body: {
      metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }], ...spec },
    },
  });
  return { namespace: namespace.name, name, uid: pod.metadata!.uid! };
}

const allocated = async (pool: string) => Object.keys((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).length;

beforeAll(async () => {
  namespace = await createNamespace('reclaim');
  tidepool = await startTidepool({ controller: true });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  for (const name of poolNames) {
    const pool = await pools().getPool(name);
    if (pool) await pools().replacePoolStatus({ ...pool, status: {} }).catch(() => undefined);
    await pools().deletePool(name).catch(() => undefined);
  }
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
    expect([result.state, result.lastReason]).toEqual(['Reclaimed', 'PodNotFound']);
    const signals = (await handle.fetchHistory()).events!.filter((e) => e.workflowExecutionSignaledEventAttributes).map((e) => e.workflowExecutionSignaledEventAttributes!.signalName);
    expect(signals).toContain('podEvent');
    expect(await tidepool.metrics.registry.getSingleMetricAsString('tidepool_reclaims_total')).toContain('tidepool_reclaims_total{reason="PodNotFound"} 5');
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

  it('reclaims its pods’ IPs after deletionTimestamp + grace, not before, and keeps them with the NotReady switch off', async () => {
    const switchOff = await startTidepool({ controller: true, settings: { gc: { ...RECLAIM_DEFAULTS.gc, reclaimTerminatingOnNotReadyNode: false } } });
    // With every node of a zone NotReady, the node-lifecycle controller suspects a network partition and
    // evicts nothing; a real cluster has healthy nodes beside the dead one, and so does this test.
    const healthy = `alive-${tag}`;
    await readyNode(healthy);
    const beating = setInterval(() => void heartbeat(healthy).catch(() => undefined), 3000);
    try {
      const nodeOn = `dead-on-${tag}`;
      const nodeOff = `dead-off-${tag}`;
      await readyNode(nodeOn);
      await readyNode(nodeOff);
      const pool = await createPool('dead', ['10.90.2.1-10.90.2.10']);
      const on = await createPod('on-dead-node', pool, { nodeName: nodeOn, terminationGracePeriodSeconds: 5, tolerations });
      const off = await createPod('on-dead-node-kept', pool, { nodeName: nodeOff, terminationGracePeriodSeconds: 5, tolerations });
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
      const graceEnds = deletion + 5_000;
      if (Date.now() < graceEnds - 1000) expect(await holders()).toContain(on.name);

      await waitFor('the dead node’s pod IP to be reclaimed', async () => !(await holders()).includes(on.name), 60_000);
      expect(Date.now()).toBeGreaterThanOrEqual(graceEnds);
      const result = await tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, on.name)).result();
      expect([result.state, result.lastReason]).toEqual(['Reclaimed', 'TerminatingOnNotReadyNode']);

      // The node-lifecycle controller taints one node at a time (0.1 nodes/s), so the second may lag.
      let offDeletion = 0;
      await waitFor('the real controllers to evict the other dead node’s pod', async () => {
        const pod = await core().readNamespacedPod({ namespace: namespace.name, name: off.name });
        offDeletion = pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : 0;
        return offDeletion > 0;
      }, 90_000);
      const offGraceEnds = offDeletion + 5_000;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, offGraceEnds + 5_000 - Date.now())));
      expect(await holders()).toEqual([off.name]);
      const kept = await switchOff.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, off.name)).describe();
      expect(kept.status.name).toBe('RUNNING');
    } finally {
      clearInterval(beating);
      await switchOff.stop();
      for (const name of [`dead-on-${tag}`, `dead-off-${tag}`, healthy]) await core().deleteNode({ name }).catch(() => undefined);
    }
  });
});
