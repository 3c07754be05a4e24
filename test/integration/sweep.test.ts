import { randomBytes } from 'node:crypto';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSweepActivities } from '../../src/activities/sweep.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import { TidepoolMetrics } from '../../src/metrics.ts';
import type { SweepReport } from '../../src/gc/plan.ts';
import { ensureGcSchedule } from '../../src/gc/schedule.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { API_VERSION, IP_PROTECTION_FINALIZER } from '../../src/k8s/types.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, kubeConfig, suiteSelector, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const id = () => randomBytes(32).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
let pool: string;

async function createPod(name: string) {
  const pod = await core().createNamespacedPod({
    namespace: namespace.name,
    body: {
      metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: 5 },
    },
  });
  const ref = { namespace: namespace.name, name, uid: pod.metadata!.uid! };
  expect((await runCni('ADD', cniEnv(ref, id()), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);
  return ref;
}

const sweep = (dryRun: boolean) =>
  tidepool.client.workflow.execute('gcSweep', { taskQueue: tidepool.taskQueue, workflowId: `sweep-test-${tag}-${randomBytes(2).toString('hex')}`, args: [{ dryRun }] }) as Promise<SweepReport>;
const mine = (report: SweepReport) =>
  report.reclaims.filter((r) => r.namespace === namespace.name).map((r) => [r.pod, r.reason]).sort();
const holders = async () => Object.values((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).map((r) => r.pod.split('/')[1]).sort();

beforeAll(async () => {
  namespace = await createNamespace('sweep');
  pool = `sweep-${tag}`;
  await pools().createPool(pool, { subnet: '10.91.0.0/24', ips: ['10.91.0.1-10.91.0.50'] });
  tidepool = await startTidepool();
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  const p = await pools().getPool(pool);
  if (p) await pools().replacePoolStatus({ ...p, status: {} }).catch(() => undefined);
  await pools().deletePool(pool).catch(() => undefined);
});

describe('a GC sweep', () => {
  it('finds (c) finished pods, (d) records of pods that never existed, (e) endpoints without pods, and pods deleted while no controller ran; a dry run changes nothing', async () => {
    await createPod('running');
    const finished = await createPod('finished');
    const deleted = await createPod('deleted-unseen');
    const old = new Date(Date.now() - 120_000);
    await core().patchNamespacedPodStatus(
      {
        namespace: namespace.name,
        name: finished.name,
        body: { status: { phase: 'Succeeded', containerStatuses: [{ name: 'c', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, finishedAt: old } } }] } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await core().deleteNamespacedPod({ namespace: namespace.name, name: deleted.name, gracePeriodSeconds: 0 });

    const current = (await pools().getPool(pool))!;
    const allocatedIPs = { ...current.status!.allocatedIPs, '10.91.0.49': { pod: `${namespace.name}/ghost`, podUID: 'ghost-uid', allocatedAt: new Date(Date.now() - 600_000).toISOString() } };
    await pools().replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs, allocatedIPCount: Object.keys(allocatedIPs).length } });
    await pools().createPodEndpoint({
      apiVersion: API_VERSION,
      kind: 'PodEndpoint',
      metadata: { name: 'orphan', namespace: namespace.name, finalizers: [IP_PROTECTION_FINALIZER] },
      status: { podUID: 'orphan-uid', ips: [{ interface: 'eth0', address: '10.91.0.48/24', pool }] },
    });
    expect(await holders()).toEqual(['deleted-unseen', 'finished', 'ghost', 'running']);

    const dry = await sweep(true);
    expect(dry.dryRun).toBe(true);
    expect(mine(dry)).toEqual([
      ['deleted-unseen', 'PodNotFound'],
      ['finished', 'PodSucceeded'],
      ['ghost', 'PodNotFound'],
      ['orphan', 'EndpointWithoutPod'],
    ]);
    expect(await holders()).toEqual(['deleted-unseen', 'finished', 'ghost', 'running']);

    const report = await sweep(false);
    expect(mine(report)).toEqual(mine(dry));
    expect(report.kept.PodPending).toBeGreaterThanOrEqual(1);
    await waitFor('the leaked IPs to be reclaimed', async () => (await holders()).join() === 'running', 20_000);
    await waitFor('the orphan PodEndpoint to go', async () => (await pools().getPodEndpoint(namespace.name, 'orphan')) === undefined, 20_000);

    for (const [pod, reason] of [['ghost', 'PodNotFound'], ['finished', 'PodSucceeded'], ['orphan', 'EndpointWithoutPod']] as const) {
      const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, pod));
      const result = await handle.result();
      expect([pod, result.state, result.releaseReason]).toEqual([pod, 'Reclaimed', reason]);
    }
    const again = await sweep(false);
    expect(mine(again)).toEqual([]);
  });
});

describe('two workers with their own namespace selectors (two installations, or the suite beside ./dev up)', () => {
  it('each sweeps only the records of its own namespaces, and never the other’s', async () => {
    const scopes = ['a', 'b'] as const;
    const namespaces = await Promise.all(scopes.map((scope) => createNamespace(`sweep-${scope}`)));
    const workers: TidepoolUnderTest[] = [];
    try {
      for (const [i, scope] of scopes.entries()) {
        await core().patchNamespace(
          { name: namespaces[i]!.name, body: { metadata: { labels: { 'tidepool.dev/scope-test': `${tag}-${scope}` } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        workers.push(await startTidepool({ settings: { namespaceSelector: `${suiteSelector()},tidepool.dev/scope-test=${tag}-${scope}` } }));
      }
      const current = (await pools().getPool(pool))!;
      const old = new Date(Date.now() - 600_000).toISOString();
      const ghosts = { '10.91.0.45': { pod: `${namespaces[0]!.name}/ghost-a`, podUID: 'ghost-a', allocatedAt: old }, '10.91.0.46': { pod: `${namespaces[1]!.name}/ghost-b`, podUID: 'ghost-b', allocatedAt: old } };
      const allocatedIPs = { ...current.status!.allocatedIPs, ...ghosts };
      await pools().replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs, allocatedIPCount: Object.keys(allocatedIPs).length } });

      const sweepOf = (worker: TidepoolUnderTest) =>
        worker.client.workflow.execute('gcSweep', { taskQueue: worker.taskQueue, workflowId: `scoped-sweep-${tag}-${randomBytes(2).toString('hex')}`, args: [{}] }) as Promise<SweepReport>;
      const ghostsLeft = async () => (await holders()).filter((name) => (name ?? '').startsWith('ghost-'));
      // Records of namespaces that are gone (other runs' leftovers) are every worker's; these two exist.
      const ofTheTwo = (report: SweepReport) =>
        report.reclaims.filter((r) => namespaces.some((n) => n.name === r.namespace)).map((r) => `${r.namespace}/${r.pod}`);
      const first = await sweepOf(workers[0]!);
      expect(ofTheTwo(first)).toEqual([`${namespaces[0]!.name}/ghost-a`]);
      expect(first.scope).toBeUndefined();
      await waitFor('worker a to reclaim its ghost', async () => (await ghostsLeft()).join() === 'ghost-b', 20_000);
      const second = await sweepOf(workers[1]!);
      expect(ofTheTwo(second)).toEqual([`${namespaces[1]!.name}/ghost-b`]);
      await waitFor('worker b to reclaim its ghost', async () => (await ghostsLeft()).length === 0, 20_000);
    } finally {
      for (const worker of workers) await worker.stop();
      for (const namespace of namespaces) await namespace.remove();
    }
  });
});

describe('handing leaks over to their lifecycles', () => {
  it('skips a group whose records and endpoint are gone since the plan was read, and hands over one still held', async () => {
    const activities = createSweepActivities({ kubeConfig: kubeConfig(), gc: RECLAIM_DEFAULTS.gc, taskQueue: tidepool.taskQueue, metrics: new TidepoolMetrics(), writer: tidepool.writer });
    const env = new MockActivityEnvironment(undefined, { client: tidepool.client });
    const gone = { namespace: namespace.name, pod: 'already-reclaimed', podUID: 'gone-uid', reason: 'PodNotFound' as const, ips: [{ ip: '10.91.0.47', pool }] };
    expect(await env.run(activities.requestReclaims, [gone])).toBe(0);
    await expect(tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'already-reclaimed')).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    const current = (await pools().getPool(pool))!;
    const allocatedIPs = { ...current.status?.allocatedIPs, '10.91.0.46': { pod: `${namespace.name}/stale`, podUID: 'stale-uid', allocatedAt: new Date(0).toISOString() } };
    await pools().replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs, allocatedIPCount: Object.keys(allocatedIPs).length } });
    const held = { namespace: namespace.name, pod: 'stale', podUID: 'stale-uid', reason: 'PodNotFound' as const, ips: [{ ip: '10.91.0.46', pool }] };
    expect(await env.run(activities.requestReclaims, [held])).toBe(1);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'stale'));
    const result = await handle.result();
    expect([result.state, result.releaseReason]).toEqual(['Reclaimed', 'PodNotFound']);
    expect((await holders()).includes('stale')).toBe(false);
    const description = await handle.describe();
    expect(await description.staticSummary()).toBe(`IPs of pod ${namespace.name}/stale`);
    expect(await description.staticDetails()).toContain('- **started by**: GC sweep reclaim of 10.91.0.46: PodNotFound');
  });
});

describe('the tidepool-gc Schedule', () => {
  it('runs gcSweep at the set interval with overlap SKIP and a catch-up window, and is updated in place', async () => {
    const scheduleId = `tidepool-gc-test-${tag}`;
    const handle = await ensureGcSchedule(tidepool.client, { intervalMs: 3_600_000, taskQueue: tidepool.taskQueue, scheduleId });
    try {
      let described = await handle.describe();
      expect(described.spec.intervals?.[0]?.every).toBe(3_600_000);
      expect(described.policies.overlap).toBe('SKIP');
      expect(described.policies.catchupWindow).toBe(3_600_000);
      expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'gcSweep', taskQueue: tidepool.taskQueue });
      await ensureGcSchedule(tidepool.client, { intervalMs: 600_000, taskQueue: tidepool.taskQueue, scheduleId });
      described = await handle.describe();
      expect(described.spec.intervals?.[0]?.every).toBe(600_000);
    } finally {
      await handle.delete();
    }
  });
});
