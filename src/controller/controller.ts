import { AppsV1Api, CoreV1Api, makeInformer, type KubeConfig, type KubernetesObject, type V1Namespace, type V1Node, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { nodeFacts, statefulSetFacts } from '../gc/facts.ts';
import { wantsOrdinal, type GcConfig } from '../gc/verdict.ts';
import { poolAddresses } from '../ipam/pool.ts';
import { heldReservedIPs } from '../ipam/reserved.ts';
import { statusCounts } from '../ipam/status.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { IP_PROTECTION_FINALIZER, type IPPool, type PodEndpoint, type ReservedIP } from '../k8s/types.ts';
import { KubeApiError } from '../k8s/errors.ts';
import { EventRecorder } from '../k8s/events.ts';
import { reservedIPHeld } from '../k8s/tidepool-events.ts';
import { restartOnError, tidepoolInformer, type Watched } from '../k8s/watch.ts';
import { podLifecycleWorkflowId, poolDeletionWorkflowId, TASK_QUEUE } from '../temporal/names.ts';
import { podEventSignal, reclaimSignal, type PodEvent } from '../contract/lifecycle.ts';
import { poolReleasedSignal, type PoolDeletionWorkflow } from '../contract/pools.ts';
import type { Log } from '../log.ts';
import { createStaleRecordWatch } from './stale-records.ts';

const HELD_IPS_SYNC_DELAY_MS = 300;
/** How often every pool is looked at again, for a finalizer someone removed without the watch telling us. */
const POOL_RESYNC_MS = 30_000;
/** How old a pool must be before the controller writes its counts. */
const COUNT_AFTER_MS = 3_000;
/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  client: Client;
  /** Where pool-deletion workflows run. */
  taskQueue?: string;
  /** The reclaim settings: the stale-record watch judges with them. */
  gc: GcConfig;
  /** Only pods of namespaces this label selector matches are signalled ('' or absent: all). */
  namespaceSelector?: string;
  log?: Log;
}

/**
 * Turns pod, node and StatefulSet events into `podEvent` signals to the pods' lifecycle workflows: a pod
 * deleted, a pod still terminating when its grace and the extra delay are over, a pod Succeeded or Failed, a
 * node gone NotReady under terminating pods, a StatefulSet deleted or scaled down under the pods whose IPs it kept. Each lifecycle judges its pod at the
 * signalled time on a durable timer, and waits on its own for grace periods. Only pods with a PodEndpoint are
 * signalled. It hands a live pod's stale records to its lifecycle (./stale-records.ts). It also starts the pool-deletion workflow of a terminating IPPool
 * and keeps ReservedIPs' status.heldIPs current. It owns the ip-protection finalizer of every IPPool (the
 * mutating webhook adds it too, when it runs): without it, `kubectl delete` would remove a pool at once, under
 * the pods that hold its IPs. Signals and writes are idempotent, so two controllers may run at once.
 */
export function createController({ kubeConfig, client, taskQueue = TASK_QUEUE, gc, namespaceSelector = '', log = () => {} }: ControllerOptions) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const pods: Watched<V1Pod> = makeInformer(kubeConfig, '/api/v1/pods', () => core.listPodForAllNamespaces());
  const nodes: Watched<V1Node> = makeInformer(kubeConfig, '/api/v1/nodes', () => core.listNode());
  const statefulSets: Watched<V1StatefulSet> = makeInformer(kubeConfig, '/apis/apps/v1/statefulsets', () => apps.listStatefulSetForAllNamespaces());
  const endpoints = tidepoolInformer<PodEndpoint>(kubeConfig, 'podendpoints');
  const ippools = tidepoolInformer<IPPool>(kubeConfig, 'ippools');
  const reservations = tidepoolInformer<ReservedIP>(kubeConfig, 'reservedips');
  const namespaces: Watched<V1Namespace> | undefined = namespaceSelector
    ? makeInformer(kubeConfig, '/api/v1/namespaces', () => core.listNamespace({ labelSelector: namespaceSelector }), namespaceSelector)
    : undefined;
  /** Whether the worker's namespace selector takes this namespace's pods. */
  const inScope = (namespace: string) => !namespaces || namespaces.get(namespace) !== undefined;
  const informers = [pods, nodes, statefulSets, endpoints, ippools, reservations, ...(namespaces ? [namespaces] : [])] as Watched<KubernetesObject>[];
  const tidepool = new TidepoolClient(kubeConfig);
  const events = new EventRecorder(kubeConfig);
  /**
   * Events already signalled, by pod UID, so a resync does not repeat them. A UID is forgotten once its pod is
   * deleted and its PodEndpoint is gone, so the map holds only pods that exist or still hold IPs.
   */
  const sent = new Map<string, Set<PodEvent['event']>>();
  /**
   * Terminating pods, by UID, whose lifecycle is told once their grace and the extra delay are over: a runtime
   * that calls DEL in time (the usual deletion) then costs the lifecycle no signal and no timer. A worker that
   * restarts meanwhile lists the pod again and waits anew; the sweep covers one that no worker watches.
   */
  const graceEnds = new Map<string, { timer: NodeJS.Timeout; deletionAt: number }>();
  const notReady = new Set<string>();
  let stopped = false;

  async function signal(pod: V1Pod, event: PodEvent['event'], checkAt: number): Promise<void> {
    await signalPod(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '', pod.metadata?.uid ?? '', event, checkAt);
  }

  async function signalPod(namespace: string, name: string, uid: string, event: PodEvent['event'], checkAt: number): Promise<void> {
    const events = sent.get(uid) ?? new Set();
    if (events.has(event) || !endpoints.get(name, namespace) || !inScope(namespace)) return;
    events.add(event);
    sent.set(uid, events);
    try {
      await client.workflow.getHandle(podLifecycleWorkflowId(namespace, name)).signal(podEventSignal, { podUID: uid, event, checkAt });
      log('info', 'signalled pod event', { pod: `${namespace}/${name}`, event });
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return;
      events.delete(event);
      log('warn', 'could not signal pod event; the next sweep covers it', { pod: `${namespace}/${name}`, event, error: (error as Error).message });
    }
  }

  function signalWhenGraceEnds(pod: V1Pod, deletionAt: number): void {
    const { uid = '', name = '', namespace = '' } = pod.metadata ?? {};
    const waiting = graceEnds.get(uid);
    // A second delete with a shorter grace moves the deletionTimestamp earlier: the wait moves with it.
    if ((waiting && waiting.deletionAt <= deletionAt) || sent.get(uid)?.has('terminating')) return;
    clearTimeout(waiting?.timer);
    // Signalled early (a grace beyond setTimeout's range), the lifecycle still waits for it on a durable timer.
    const delayMs = Math.min(MAX_TIMER_MS, Math.max(0, deletionAt + gc.additionalGraceDelayMs - Date.now()));
    const timer = setTimeout(() => {
      graceEnds.delete(uid);
      const current = pods.get(name, namespace);
      if (current?.metadata?.uid === uid) void signal(current, 'terminating', deletionAt);
    }, delayMs);
    graceEnds.set(uid, { timer, deletionAt });
  }

  function onPod(pod: V1Pod): void {
    const deletion = pod.metadata?.deletionTimestamp;
    if (deletion) signalWhenGraceEnds(pod, new Date(deletion).getTime());
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') void signal(pod, 'finished', Date.now());
  }

  /** A StatefulSet deleted or scaled down: every pod whose IPs it kept and whose ordinal it no longer wants is judged now. */
  const onStatefulSet = (set: V1StatefulSet, deleted: boolean) => {
    const namespace = set.metadata?.namespace ?? '';
    const name = set.metadata?.name ?? '';
    const facts = statefulSetFacts(name, deleted ? undefined : set);
    for (const endpoint of endpoints.list(namespace)) {
      if (endpoint.status.ownerKind !== 'StatefulSet' || endpoint.status.ownerName !== name || wantsOrdinal(facts, endpoint.metadata.name)) continue;
      void signalPod(namespace, endpoint.metadata.name, endpoint.status.podUID, 'statefulSetChanged', Date.now());
    }
  };
  statefulSets.on('update', (set) => onStatefulSet(set, false));
  statefulSets.on('delete', (set) => onStatefulSet(set, true));

  const staleRecords = createStaleRecordWatch({
    gc,
    pod: (namespace, name) => pods.get(name, namespace),
    endpoint: (namespace, name) => endpoints.get(name, namespace),
    pool: (name) => ippools.get(name),
    reclaim: (namespace, pod, podUID, ips) => {
      if (!inScope(namespace)) return;
      client.workflow
        .getHandle(podLifecycleWorkflowId(namespace, pod))
        .signal(reclaimSignal, { podUID, reason: 'StaleRecord', ips })
        .then(
          () => log('info', 'handed stale records of a live pod to its lifecycle', { pod: `${namespace}/${pod}`, ips: ips.map((i) => i.ip) }),
          (error: unknown) => log('warn', 'could not hand stale records to the lifecycle; the next sweep covers them', { pod: `${namespace}/${pod}`, error: (error as Error).message }),
        );
    },
  });

  /** Adds the ip-protection finalizer to a pool that lacks it and is not being deleted. */
  const protecting = new Set<string>();
  async function protect(pool: IPPool): Promise<void> {
    const name = pool.metadata.name;
    if (pool.metadata.deletionTimestamp || (pool.metadata.finalizers ?? []).includes(IP_PROTECTION_FINALIZER) || protecting.has(name)) return;
    protecting.add(name);
    try {
      await tidepool.replacePool({ ...pool, metadata: { ...pool.metadata, finalizers: [...(pool.metadata.finalizers ?? []), IP_PROTECTION_FINALIZER] } });
      log('info', 'added the ip-protection finalizer to a pool', { pool: name });
    } catch (error) {
      // A conflict or a deletion is followed by a watch event that decides again.
      if (!(error instanceof KubeApiError && (error.conflict || error.notFound))) {
        log('warn', 'could not add the ip-protection finalizer to a pool; the next resync tries again', { pool: name, error: (error as Error).message });
      }
    } finally {
      protecting.delete(name);
    }
  }

  /**
   * Writes the counts `kubectl get ippools` shows when they are missing or wrong: a pool that no allocation has
   * touched yet, or whose spec changed since. A pool is left alone for its first seconds, so that whoever just
   * created it can read and replace it without a conflict from this write. A conflict means a newer pool is on
   * its way through the watch.
   */
  const counting = new Map<string, NodeJS.Timeout>();
  function countSoon(pool: IPPool): void {
    const name = pool.metadata.name;
    const age = Date.now() - new Date(pool.metadata.creationTimestamp ?? 0).getTime();
    if (age >= COUNT_AFTER_MS) {
      void count(pool);
      return;
    }
    if (counting.has(name)) return;
    counting.set(name, setTimeout(() => {
      counting.delete(name);
      const current = ippools.get(name);
      if (current && !stopped) void count(current);
    }, COUNT_AFTER_MS - age));
  }
  async function count(pool: IPPool): Promise<void> {
    let counts;
    try {
      counts = statusCounts(poolAddresses(pool.metadata.name, pool.spec), pool.status?.allocatedIPs ?? {});
    } catch {
      return; // a spec the webhook and the schema let through but the allocator refuses: its errors say so
    }
    if (pool.status?.allocatedIPCount === counts.allocatedIPCount && pool.status?.totalIPCount === counts.totalIPCount) return;
    try {
      await tidepool.replacePoolStatus({ ...pool, status: { ...pool.status, ...counts } });
    } catch (error) {
      if (!(error instanceof KubeApiError && (error.conflict || error.notFound))) {
        log('warn', 'could not write a pool’s counts', { pool: pool.metadata.name, error: (error as Error).message });
      }
    }
  }

  /** A terminating pool: start its pool-deletion workflow, or tell the running one to look again. */
  const onPool = (pool: IPPool) => {
    void protect(pool);
    countSoon(pool);
    staleRecords.onPool(pool);
    if (!pool.metadata.deletionTimestamp) return;
    const name = pool.metadata.name;
    client.workflow
      .signalWithStart<PoolDeletionWorkflow>('poolDeletion', {
        workflowId: poolDeletionWorkflowId(name),
        taskQueue,
        args: [name],
        signal: poolReleasedSignal,
        staticSummary: `Deletion of IPPool ${name}: removes its finalizer once no IP is allocated`,
      })
      .catch((error: unknown) => log('warn', 'could not signal the pool deletion', { pool: name, error: (error as Error).message }));
  };
  ippools.on('add', onPool);
  ippools.on('update', onPool);
  ippools.on('delete', (pool) => staleRecords.onPoolDeleted(pool));

  /** Keeps every ReservedIP's status.heldIPs equal to the reserved IPs that pods hold, coalescing bursts of pool writes. */
  let heldSync: NodeJS.Timeout | undefined;
  const syncPodIPsSoon = () => {
    if (stopped || heldSync) return;
    heldSync = setTimeout(() => {
      heldSync = undefined;
      void syncPodIPs();
    }, HELD_IPS_SYNC_DELAY_MS);
  };
  async function syncPodIPs(): Promise<void> {
    const allPools = ippools.list();
    for (const reservation of reservations.list()) {
      if (reservation.metadata.deletionTimestamp) continue;
      const held = heldReservedIPs(reservation, allPools);
      if (JSON.stringify(held) === JSON.stringify(reservation.status?.heldIPs ?? [])) continue;
      const before = new Set((reservation.status?.heldIPs ?? []).map((entry) => `${entry.ip}/${entry.podUID}`));
      try {
        await tidepool.reservedIPs.replaceStatus({ ...reservation, status: { ...reservation.status, heldIPs: held } });
        if (held.length > 0) log('info', 'reserved IPs held by pods', { reservedIP: reservation.metadata.name, held: held.map((entry) => `${entry.ip} (${entry.pod})`) });
        for (const entry of held.filter((e) => !before.has(`${e.ip}/${e.podUID}`))) {
          await events.tryRecord(reservedIPHeld(reservation.metadata.name, reservation.metadata.uid, entry.ip, entry.pod), (message, fields) => log('warn', message, fields));
        }
      } catch (error) {
        if (!(error instanceof KubeApiError && (error.conflict || error.notFound))) {
          log('warn', 'could not write a ReservedIP status', { reservedIP: reservation.metadata.name, error: (error as Error).message });
        }
        // A conflict means a newer object is on its way through the watch, which schedules another sync.
        if (!(error instanceof KubeApiError && error.conflict)) syncPodIPsSoon();
      }
    }
  }
  for (const informer of [ippools, reservations] as Watched<KubernetesObject>[]) {
    for (const event of ['add', 'update', 'delete'] as const) informer.on(event, syncPodIPsSoon);
  }

  pods.on('add', onPod);
  pods.on('update', onPod);
  pods.on('delete', (pod) => {
    const uid = pod.metadata?.uid ?? '';
    clearTimeout(graceEnds.get(uid)?.timer);
    graceEnds.delete(uid);
    void signal(pod, 'deleted', Date.now()).finally(() => {
      if (!endpoints.get(pod.metadata?.name ?? '', pod.metadata?.namespace)) sent.delete(pod.metadata?.uid ?? '');
    });
  });
  endpoints.on('delete', (endpoint) => {
    if (pods.get(endpoint.metadata.name, endpoint.metadata.namespace)?.metadata?.uid !== endpoint.status.podUID) sent.delete(endpoint.status.podUID);
  });
  const onNode = (node: V1Node) => {
    const name = node.metadata?.name ?? '';
    if (nodeFacts(node).ready) {
      notReady.delete(name);
      return;
    }
    if (notReady.has(name)) return;
    notReady.add(name);
    for (const pod of pods.list()) {
      if (pod.spec?.nodeName === name && pod.metadata?.deletionTimestamp) void signal(pod, 'nodeNotReady', Date.now());
    }
  };
  nodes.on('add', onNode);
  nodes.on('update', onNode);

  for (const informer of informers) {
    restartOnError(informer, () => stopped, (error) => log('warn', 'watch failed; restarting it', { error: error.message }));
  }

  let resync: NodeJS.Timeout | undefined;

  return {
    /** Starts watching; resolves once every watch holds its first list. PodEndpoints are listed first. */
    async start(): Promise<void> {
      await endpoints.start();
      // Pods first: the stale-record watch judges each listed pool's records against them.
      await Promise.all([pods.start(), nodes.start(), statefulSets.start(), reservations.start(), ...(namespaces ? [namespaces.start()] : [])]);
      await ippools.start();
      // Pods deleted while no controller watched (no replica led, or this one was down) are told now.
      for (const endpoint of endpoints.list()) {
        const { name, namespace = '' } = endpoint.metadata;
        if (pods.get(name, namespace)?.metadata?.uid !== endpoint.status.podUID) void signalPod(namespace, name, endpoint.status.podUID, 'deleted', Date.now());
      }
      resync = setInterval(() => ippools.list().forEach((pool) => void protect(pool)), POOL_RESYNC_MS);
    },
    async stop(): Promise<void> {
      stopped = true;
      staleRecords.stop();
      for (const timer of [...counting.values(), ...[...graceEnds.values()].map((wait) => wait.timer)]) clearTimeout(timer);
      clearInterval(resync);
      clearTimeout(heldSync);
      await Promise.all(informers.map((informer) => informer.stop()));
    },
  };
}

export type Controller = ReturnType<typeof createController>;
