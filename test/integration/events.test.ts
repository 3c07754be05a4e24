import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SweepReport } from '../../src/gc/plan.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { EventRecorder } from '../../src/k8s/events.ts';
import { podTarget } from '../../src/k8s/tidepool-events.ts';
import { createNamespace, createPodWithPool, deletePools, kubeConfig, kubectl, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const id = () => randomBytes(32).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const client = () => new TidepoolClient(kubeConfig());
const pool = `events-${tag}`;
const reservation = `events-${tag}`;
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;

interface CoreEvent {
  type: string;
  reason: string;
  message: string;
  reportingComponent: string;
  involvedObject: { kind: string; name: string; namespace?: string };
}

/** The Events `kubectl get events` lists, as a user looks for them. */
async function events(where: string[], reason: string): Promise<CoreEvent[]> {
  const list = JSON.parse(await kubectl('get', 'events', ...where, '--field-selector', `reason=${reason}`, '-o', 'json')) as { items: CoreEvent[] };
  return list.items;
}

const podWithoutIP = (name: string) => createPodWithPool(namespace.name, name, pool);

beforeAll(async () => {
  namespace = await createNamespace('events');
  await client().createPool(pool, { subnet: '10.94.0.0/24', ips: ['10.94.0.1'] });
  tidepool = await startTidepool({ controller: true });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await client().reservedIPs.delete(reservation).catch(() => undefined);
  await deletePools([pool]);
});

describe('Kubernetes Events an operator finds with kubectl', () => {
  it('tell of a failed allocation on the pod, an exhausted pool, a reclaim, an unrecorded IP and a held reserved IP', async () => {
    const conf = netconf(tidepool.socketPath, tidepool.spoolDir);
    const first = await podWithoutIP('first');
    expect((await runCni('ADD', cniEnv(first, id()), conf)).code).toBe(0);

    const starved = await podWithoutIP('starved');
    const failed = await runCni('ADD', cniEnv(starved, id()), conf);
    expect(failed.json).toMatchObject({ code: 100 });
    const [onPod] = await events(['-n', namespace.name], 'IPAllocationFailed');
    expect(onPod).toMatchObject({ type: 'Warning', reportingComponent: 'tidepool.dev/worker', involvedObject: { kind: 'Pod', name: 'starved' } });
    expect(onPod!.message).toBe(`no IPv4 address is free for pod ${namespace.name}/starved in pool ${pool} (every IP in use or reserved) (NoFreeIP)`);
    const exhausted = (await events(['-n', 'default'], 'PoolExhausted')).filter((e) => e.involvedObject.name === pool);
    expect(exhausted.map((e) => [e.type, e.involvedObject.kind, e.message])).toEqual([
      ['Warning', 'IPPool', `no free IP for pod ${namespace.name}/starved: every allocatable IP is allocated, reserved or cooling down`],
    ]);

    // The first pod goes without a DEL: the controller's path reclaims its IP.
    await core().deleteNamespacedPod({ namespace: namespace.name, name: 'first', gracePeriodSeconds: 0 });
    await waitFor('the reclaim Event on the pool', async () => (await events(['-n', 'default'], 'IPReclaimed')).some((e) => e.involvedObject.name === pool), 15_000);
    const [reclaimed] = (await events(['-n', 'default'], 'IPReclaimed')).filter((e) => e.involvedObject.name === pool);
    expect([reclaimed!.type, reclaimed!.message]).toEqual(['Normal', `reclaimed 10.94.0.1 from pod ${namespace.name}/first (UID ${first.uid}): the pod no longer exists (PodNotFound)`]);

    // The starved pod's runtime tries again and gets the freed IP; then its record goes missing.
    expect((await runCni('ADD', cniEnv(starved, id()), conf)).code).toBe(0);
    const current = (await client().getPool(pool))!;
    await client().replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs: {} } });
    const sweep = (await tidepool.client.workflow.execute('gcSweep', { taskQueue: tidepool.taskQueue, workflowId: `events-sweep-${tag}`, args: [{ pools: [pool] }] })) as SweepReport;
    expect(sweep.unrecorded.map((u) => u.ip)).toEqual(['10.94.0.1']);
    const [unrecorded] = (await events(['-n', 'default'], 'UnrecordedIP')).filter((e) => e.involvedObject.name === pool);
    expect([unrecorded!.type, unrecorded!.message]).toEqual([
      'Warning',
      `IP 10.94.0.1 is held by live pod ${namespace.name}/starved (its PodEndpoint) with no record in the pool: recorded again`,
    ]);

    // An administrator reserves the IP the pod holds.
    await client().createReservedIP(reservation, { ips: ['10.94.0.1'] });
    // Another run's leftover pool may hold the same IP for its own pod: only this pod's Event is this test's.
    const ours = async () =>
      (await events(['-n', 'default'], 'ReservedIPHeld')).filter((e) => e.involvedObject.name === reservation && e.message.includes(`${namespace.name}/starved`));
    await waitFor('the ReservedIPHeld Event', async () => (await ours()).length > 0, 15_000);
    const [held] = await ours();
    expect([held!.type, held!.involvedObject.kind, held!.message]).toEqual([
      'Warning',
      'ReservedIP',
      `reserved IP 10.94.0.1 is held by pod ${namespace.name}/starved; no other pod gets it, and it is reserved once the pod releases it`,
    ]);
  });
});

describe('the Event spam filter', () => {
  it('writes a burst of 25 Events per object and reason and drops the rest, as client-go does for kubelet', async () => {
    const recorder = new EventRecorder(kubeConfig());
    const pod = await podWithoutIP('looping');
    const written = [];
    for (let attempt = 0; attempt < 30; attempt++) {
      written.push(await recorder.record({ regarding: podTarget(`${pod.namespace}/${pod.name}`, pod.uid), type: 'Warning', reason: 'IPAllocationFailed', action: 'Allocate', note: `attempt ${attempt}` }));
    }
    expect(written.filter(Boolean)).toHaveLength(25);
    expect(written.slice(25)).toEqual([false, false, false, false, false]);
    const listed = (await events(['-n', namespace.name], 'IPAllocationFailed')).filter((e) => e.involvedObject.name === 'looping');
    expect(listed).toHaveLength(25);
    // Another reason of the same object has its own burst.
    expect(await recorder.record({ regarding: podTarget(`${pod.namespace}/${pod.name}`, pod.uid), type: 'Warning', reason: 'DuplicateIP', action: 'Sweep', note: 'another reason' })).toBe(true);
  });
});
