import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
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
  });
});
