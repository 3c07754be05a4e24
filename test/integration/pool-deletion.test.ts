import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { poolDeletionWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, kubeConfig, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';
import { startWebhook, type WebhookUnderTest } from '../harness/webhook.ts';

const tag = randomBytes(3).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const pool = `deleting-${tag}`;
let tidepool: TidepoolUnderTest;
let webhook: WebhookUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;

async function createPod(name: string) {
  const pod = await core().createNamespacedPod({
    namespace: namespace.name,
    body: { metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] } },
  });
  return { namespace: namespace.name, name, uid: pod.metadata!.uid! };
}

beforeAll(async () => {
  namespace = await createNamespace('pooldel');
  tidepool = await startTidepool({ controller: true });
  // With the refusal switched off, as Spiderpool allows: the pool is admitted into Terminating and Tidepool waits.
  webhook = await startWebhook({ refuseDeleteWithAllocatedIPs: false });
});

afterAll(async () => {
  await tidepool?.stop();
  await webhook?.stop();
  await namespace?.remove();
  const left = await pools().getPool(pool);
  if (left) await pools().replacePool({ ...left, metadata: { ...left.metadata, finalizers: [] } }).catch(() => undefined);
});

describe('deleting a pool that still holds IPs, with the webhook admitting the delete', () => {
  it('goes Terminating, gives no new IP, releases still work, and the pool is gone after its last IP, across a worker restart', async () => {
    const created = await pools().createPool(pool, { subnet: '10.95.0.0/24', ips: ['10.95.0.1-10.95.0.5'] }, webhook.labels);
    expect(created.metadata.finalizers).toEqual(['tidepool.dev/ip-protection']);
    const holder = await createPod('holder');
    const container = randomBytes(32).toString('hex');
    expect((await runCni('ADD', cniEnv(holder, container), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);

    await pools().deletePool(pool);
    await waitFor('the pool to be Terminating', async () => Boolean((await pools().getPool(pool))?.metadata.deletionTimestamp));
    const late = await createPod('late');
    const refused = await runCni('ADD', cniEnv(late, randomBytes(32).toString('hex')), netconf(tidepool.socketPath, tidepool.spoolDir));
    expect(refused.json).toMatchObject({ code: 101 });
    expect(String(refused.json!.msg)).toContain(`pool ${pool} is being deleted`);

    const handle = tidepool.client.workflow.getHandle(poolDeletionWorkflowId(pool));
    await waitFor('the pool-deletion workflow to start waiting', async () => (await handle.describe().catch(() => undefined))?.status.name === 'RUNNING');

    // The worker (and controller) restart in the middle of the wait; the workflow's timer and state survive.
    const taskQueue = tidepool.taskQueue;
    await tidepool.stop();
    tidepool = await startTidepool({ controller: true, taskQueue });
    const resumed = tidepool.client.workflow.getHandle(poolDeletionWorkflowId(pool));
    const description = await resumed.describe();
    expect(description.status.name).toBe('RUNNING');
    expect(await description.staticSummary()).toBe(`Deletion of IPPool ${pool}: removes its finalizer once no IP is allocated`);

    // A live pod keeps its IP across a DEL, in a terminating pool too: the pool goes once the pod's own DEL releases it.
    await core().deleteNamespacedPod({ namespace: namespace.name, name: holder.name, gracePeriodSeconds: 0 });
    expect((await runCni('DEL', cniEnv(holder, container), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);
    await waitFor('the pool to be gone once its last IP is released', async () => (await pools().getPool(pool)) === undefined, 40_000);
    const result = await resumed.result();
    expect(result.pool).toBe(pool);
    expect(result.checks).toBeGreaterThanOrEqual(2);
    // The finalizer's removal went through the validating webhook, which lets a terminating pool's metadata change.
    const decisions = webhook.log.map((line) => JSON.parse(line) as { msg: string; operation?: string; name?: string; allowed?: boolean });
    expect(decisions.filter((entry) => entry.msg === 'admission decision' && entry.name === pool && entry.operation === 'DELETE')).toMatchObject([{ allowed: true }]);
    expect(decisions.some((entry) => entry.msg === 'admission decision' && entry.name === pool && entry.operation === 'UPDATE' && entry.allowed)).toBe(true);
  });
});
