import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SweepReport } from '../../src/gc/plan.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { IP_PROTECTION_FINALIZER } from '../../src/k8s/types.ts';
import { isRunning } from '../../sim/scenarios.ts';
import { SimulatedKubelet } from '../../sim/kubelet.ts';
import { startComponent, stopComponent } from '../../stack/stack.ts';
import { createNamespace, kubeConfig, kubectl, stack, waitFor } from '../harness/cluster.ts';
import { CNI_BINARY, cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const node = `protect-${tag}`;
let tidepool: TidepoolUnderTest;
let kubelet: SimulatedKubelet;
/** Pods the simulated kubelet runs. */
let namespace: Awaited<ReturnType<typeof createNamespace>>;
/** Pods whose CNI calls the test makes itself. */
let direct: Awaited<ReturnType<typeof createNamespace>>;
const manifests = mkdtempSync(path.join(tmpdir(), 'tidepool-pools-'));
const created: string[] = [];

/** Writes an IPPool manifest the way a user keeps one, and applies it with kubectl. */
async function applyPool(name: string, subnet: string, ips: string): Promise<string> {
  const file = path.join(manifests, `${name}.yaml`);
  writeFileSync(file, `apiVersion: tidepool.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: ${name}\nspec:\n  subnet: ${subnet}\n  ips: ["${ips}"]\n`);
  await kubectl('apply', '-f', file);
  if (!created.includes(name)) created.push(name);
  return file;
}

async function createPod(ns: string, name: string, pool: string) {
  const pod = await core().createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: 0 },
    },
  });
  return { namespace: ns, name, uid: pod.metadata!.uid! };
}

const podsOf = async (ns: string) => (await core().listNamespacedPod({ namespace: ns })).items;

async function runningPods(names: string[]): Promise<V1Pod[]> {
  let pods: V1Pod[] = [];
  await waitFor(`pods ${names.join(', ')} to run`, async () => {
    pods = (await podsOf(namespace.name)).filter((pod) => names.includes(pod.metadata!.name!));
    return pods.length === names.length && pods.every(isRunning);
  }, 60_000);
  return pods;
}

/** No two Running pods of the cluster share an IP, by their status.podIPs. */
async function expectNoSharedIP(): Promise<void> {
  const all = (await core().listPodForAllNamespaces()).items.filter(isRunning);
  const ips = all.flatMap((pod) => (pod.status?.podIPs ?? []).map((p) => p.ip));
  expect(ips.length).toBeGreaterThan(0);
  expect(new Set(ips).size).toBe(ips.length);
}

const finalizers = async (pool: string) => (await pools().getPool(pool))?.metadata.finalizers ?? [];

beforeAll(async () => {
  namespace = await createNamespace('protect');
  direct = await createNamespace('protect-cni');
  tidepool = await startTidepool({ controller: true });
  kubelet = new SimulatedKubelet({
    kubeConfig: kubeConfig(),
    nodes: [node],
    namespace: namespace.name,
    cni: { binary: CNI_BINARY, cniPath: '/opt/cni/bin', netconf: () => netconf(tidepool.socketPath, tidepool.spoolDir) },
    retryMs: 2000,
  });
  await kubelet.start();
});

afterAll(async () => {
  await stopComponent('tidepool-webhook', 'SIGTERM').catch(() => undefined);
  for (const ns of [namespace, direct]) {
    if (!ns) continue;
    await core().deleteCollectionNamespacedPod({ namespace: ns.name, gracePeriodSeconds: 0 }).catch(() => undefined);
  }
  await waitFor('the test pods to go', async () => (await podsOf(namespace.name)).length === 0, 60_000).catch(() => undefined);
  // Pools go the way a user's do: deleted, then removed by the pool-deletion workflow once empty.
  for (const pool of created) await pools().deletePool(pool).catch(() => undefined);
  await waitFor('the test pools to be gone', async () => (await Promise.all(created.map((p) => pools().getPool(p)))).every((p) => p === undefined), 60_000);
  await kubelet?.stop();
  await kubelet?.removeNodes();
  await tidepool?.stop();
  await namespace?.remove();
  await direct?.remove();
});

describe('a pool with no webhook registered', () => {
  it('gets the ip-protection finalizer from the controller; a delete leaves it Terminating, new ADDs get code 101, releases work, and it goes once empty', async () => {
    const pool = `nowebhook-${tag}`;
    await applyPool(pool, '10.98.1.0/24', '10.98.1.1-10.98.1.10');
    await waitFor('the controller to add the finalizer', async () => (await finalizers(pool)).includes(IP_PROTECTION_FINALIZER), 10_000);

    for (const name of ['holder-0', 'holder-1']) await createPod(namespace.name, name, pool);
    await runningPods(['holder-0', 'holder-1']);

    await kubectl('delete', 'ippool', pool, '--wait=false');
    const terminating = await pools().getPool(pool);
    expect(terminating?.metadata.deletionTimestamp).toBeDefined();
    expect(Object.keys(terminating?.status?.allocatedIPs ?? {})).toHaveLength(2);

    const late = await createPod(direct.name, 'late', pool);
    const refused = await runCni('ADD', cniEnv(late, randomBytes(32).toString('hex')), netconf(tidepool.socketPath, tidepool.spoolDir));
    expect(refused.json).toMatchObject({ code: 101 });
    expect(String(refused.json!.msg)).toContain(`pool ${pool} is being deleted`);

    await core().deleteNamespacedPod({ namespace: namespace.name, name: 'holder-0', gracePeriodSeconds: 0 });
    await waitFor('the first holder’s IP to be released', async () => Object.keys((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).length === 1, 20_000);
    expect(await pools().getPool(pool)).toBeDefined();
    await core().deleteNamespacedPod({ namespace: namespace.name, name: 'holder-1', gracePeriodSeconds: 0 });
    await waitFor('the pool to be gone once its last IP is released', async () => (await pools().getPool(pool)) === undefined, 40_000);
  });
});

describe('a pool whose finalizer was removed by hand, deleted under its pods, and applied again', () => {
  it('records again every IP a Running pod holds before it answers a new ADD; the new pod gets another IP and no two Running pods share one', async () => {
    const pool = `again-${tag}`;
    const file = await applyPool(pool, '10.98.2.0/24', '10.98.2.1-10.98.2.10');
    const names = ['keep-0', 'keep-1', 'keep-2'];
    for (const name of names) await createPod(namespace.name, name, pool);
    const before = await runningPods(names);
    const held = new Map(before.map((pod) => [pod.status!.podIP!, pod.metadata!.uid!]));
    const firstUID = (await pools().getPool(pool))!.metadata.uid;

    await kubectl('delete', 'ippool', pool, '--wait=false');
    await kubectl('patch', 'ippool', pool, '--type=merge', '-p', '{"metadata":{"finalizers":null}}');
    await waitFor('the pool to be gone', async () => (await pools().getPool(pool)) === undefined, 10_000);
    await kubectl('apply', '-f', file);
    const again = await pools().getPool(pool);
    expect(again?.metadata.uid).not.toBe(firstUID);
    expect(again?.status?.allocatedIPs ?? {}).toEqual({});

    await createPod(namespace.name, 'newcomer', pool);
    const [newcomer] = await runningPods(['newcomer']);
    expect(held.has(newcomer!.status!.podIP!)).toBe(false);

    const records = (await pools().getPool(pool))!.status!;
    expect(records.reconciledUID).toBe(again!.metadata.uid);
    for (const pod of before) {
      const endpoint = await pools().getPodEndpoint(namespace.name, pod.metadata!.name!);
      expect(records.allocatedIPs![pod.status!.podIP!]).toMatchObject({
        pod: `${namespace.name}/${pod.metadata!.name}`,
        podUID: pod.metadata!.uid,
        containerID: endpoint!.status.ips[0]!.containerID,
        interface: 'eth0',
      });
    }
    expect(records.allocatedIPCount).toBe(4);
    await expectNoSharedIP();
    expect(await tidepool.metrics.registry.getSingleMetricAsString('tidepool_unrecorded_ips_recorded_total')).toContain(
      `tidepool_unrecorded_ips_recorded_total{pool="${pool}",source="Reconciliation"} 3`,
    );
  });
});

describe('the sweep, given a pool whose status lost a live pod’s record', () => {
  it('reports it as unrecorded in a dry run and writes nothing; the real sweep records it again', async () => {
    const pool = `lost-${tag}`;
    await applyPool(pool, '10.98.3.0/24', '10.98.3.1-10.98.3.10');
    await createPod(namespace.name, 'forgotten', pool);
    const [pod] = await runningPods(['forgotten']);
    const ip = pod!.status!.podIP!;

    const current = (await pools().getPool(pool))!;
    const { [ip]: lost, ...rest } = current.status!.allocatedIPs!;
    expect(lost?.podUID).toBe(pod!.metadata!.uid);
    await pools().replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs: rest, allocatedIPCount: 0 } });
    const withoutRecord = (await pools().getPool(pool))!;

    const sweep = (dryRun: boolean) =>
      tidepool.client.workflow.execute('gcSweep', { taskQueue: tidepool.taskQueue, workflowId: `protect-sweep-${tag}-${dryRun}`, args: [{ dryRun }] }) as Promise<SweepReport>;
    const dry = await sweep(true);
    expect(dry.unrecorded.filter((u) => u.pool === pool).map((u) => [u.ip, u.pod, u.podUID, u.source])).toEqual([
      [ip, `${namespace.name}/forgotten`, pod!.metadata!.uid, 'PodEndpoint'],
    ]);
    expect(dry.conflicts.filter((c) => c.pool === pool)).toEqual([]);
    expect((await pools().getPool(pool))!.metadata.resourceVersion).toBe(withoutRecord.metadata.resourceVersion);

    const status = await tidepoolStatus();
    expect(status).toMatch(new RegExp(`${pool}\\s.*\\s1\\s+0$`, 'm'));

    const real = await sweep(false);
    expect(real.unrecorded.filter((u) => u.pool === pool)).toHaveLength(1);
    expect((await pools().getPool(pool))!.status!.allocatedIPs![ip]).toMatchObject({ pod: `${namespace.name}/forgotten`, podUID: pod!.metadata!.uid, interface: 'eth0' });
    expect((await sweep(true)).unrecorded.filter((u) => u.pool === pool)).toEqual([]);
  });

  it('reports a second live pod on the same IP as a conflict, with a DuplicateIP Event on both pods, and releases neither', async () => {
    const pool = `lost-${tag}`;
    const [holder] = await runningPods(['forgotten']);
    const ip = holder!.status!.podIP!;
    const intruder = await createPod(direct.name, 'intruder', pool);
    await core().patchNamespacedPodStatus(
      { namespace: direct.name, name: 'intruder', body: { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const report = (await tidepool.client.workflow.execute('gcSweep', {
      taskQueue: tidepool.taskQueue,
      workflowId: `protect-sweep-${tag}-conflict`,
      args: [{ dryRun: false }],
    })) as SweepReport;
    expect(report.conflicts.filter((c) => c.pool === pool)).toEqual([
      { ip, pool, holders: [{ pod: `${namespace.name}/forgotten`, podUID: holder!.metadata!.uid }, { pod: `${direct.name}/intruder`, podUID: intruder.uid }] },
    ]);
    expect(report.reclaims.filter((r) => r.ips.some((i) => i.ip === ip))).toEqual([]);
    expect((await pools().getPool(pool))!.status!.allocatedIPs![ip]!.podUID).toBe(holder!.metadata!.uid);
    for (const ns of [namespace.name, direct.name]) {
      const events = await kubectl('get', 'events', '-n', ns, '--field-selector', 'reason=DuplicateIP', '-o', 'custom-columns=OBJECT:.involvedObject.name,TYPE:.type,MESSAGE:.message', '--no-headers');
      expect(events).toContain(`IP ${ip} of IPPool ${pool} is held by more than one live pod: ${namespace.name}/forgotten, ${direct.name}/intruder`);
      expect(events).toMatch(ns === direct.name ? /^intruder\s+Warning/ : /^forgotten\s+Warning/);
    }
    expect(await tidepool.metrics.registry.getSingleMetricAsString('tidepool_ip_conflicts')).toContain(`tidepool_ip_conflicts{pool="${pool}"} 1`);
    await core().deleteNamespacedPod({ namespace: direct.name, name: 'intruder', gracePeriodSeconds: 0 });
  });
});

/** `tidepool status` as an operator runs it, against the stack. */
async function tidepoolStatus(): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [path.resolve(import.meta.dirname, '../../src/cli/main.ts'), 'status'], {
    env: { ...process.env, KUBECONFIG: stack().kubeconfig },
  });
  return stdout;
}

describe('a pool in use, with the webhook that ./dev up registers', () => {
  it('is not deleted, and the refusal names its holders', async () => {
    await startComponent('tidepool-webhook');
    const pool = `webhook-${tag}`;
    await applyPool(pool, '10.98.4.0/24', '10.98.4.1-10.98.4.10');
    expect(await finalizers(pool)).toEqual([IP_PROTECTION_FINALIZER]);
    for (const name of ['in-use-0', 'in-use-1']) await createPod(namespace.name, name, pool);
    await runningPods(['in-use-0', 'in-use-1']);

    const refusal = await kubectl('delete', 'ippool', pool).then(
      () => 'deleted',
      (error: { stderr?: string }) => error.stderr ?? String(error),
    );
    expect(refusal).toContain('denied the request');
    expect(refusal).toContain(`${namespace.name}/in-use-0`);
    expect(refusal).toContain(`${namespace.name}/in-use-1`);
    expect((await pools().getPool(pool))?.metadata.deletionTimestamp).toBeUndefined();
    await stopComponent('tidepool-webhook', 'SIGTERM');
  });
});
