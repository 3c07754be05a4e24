import { heartbeat, getClient, log } from '@temporalio/activity';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { livePod } from '../gc/facts.ts';
import type { ReclaimGroup, SweepReport, UnrecordedIP } from '../gc/plan.ts';
import { judgeCluster } from '../gc/snapshot.ts';
import type { GcConfig } from '../gc/verdict.ts';
import type { IPConflict } from '../ipam/holders.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeCall, kubeGetOptional } from '../k8s/errors.ts';
import { EventRecorder } from '../k8s/events.ts';
import { duplicateIP, podTarget, poolTarget, unrecordedIP } from '../k8s/tidepool-events.ts';
import { PoolNotFoundError } from '../ipam/allocator.ts';
import type { PoolWriter } from '../store/pool-writer.ts';
import type { TidepoolMetrics } from '../metrics.ts';
import { lifecycleStartOptions } from '../temporal/lifecycle-start.ts';
import type { SweepScope } from '../contract/pools.ts';
import { reclaimSignal, type PodIPLifecycleWorkflow, type ReclaimRequest } from '../contract/lifecycle.ts';

/** The sweep's activities: a live read and judgement of the cluster, and the hand-over of each leak to its lifecycle. */
export function createSweepActivities({
  kubeConfig,
  gc,
  namespaceSelector = '',
  taskQueue,
  metrics,
  writer,
}: {
  kubeConfig: KubeConfig;
  gc: GcConfig;
  /** Only pods of namespaces this label selector matches are swept ('' for all). */
  namespaceSelector?: string;
  taskQueue: string;
  metrics: TidepoolMetrics;
  writer: PoolWriter;
}) {
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const events = new EventRecorder(kubeConfig);
  const warn = (message: string, fields: Record<string, unknown>) => log.warn(message, fields);

  /**
   * The scope without the existing namespaces the worker's selector does not match, listed live. Records of a
   * namespace that is gone stay in scope, or a worker with a selector would never reclaim them.
   */
  async function withinSelector(scope: SweepScope): Promise<SweepScope> {
    if (!namespaceSelector) return scope;
    const names = async (labelSelector?: string) =>
      (await kubeCall('list namespaces', () => core.listNamespace(labelSelector ? { labelSelector } : {}))).items.map((ns) => ns.metadata?.name ?? '');
    const matching = new Set(await names(namespaceSelector));
    return { ...scope, excludeNamespaces: (await names()).filter((name) => !matching.has(name)) };
  }

  /** Whether the holder still holds the IP by a live read: its pod live and not terminating, and its claim still there. */
  async function stillHolds(holder: UnrecordedIP): Promise<boolean> {
    const [namespace = '', name = ''] = holder.pod.split('/');
    const pod = await kubeGetOptional(`get pod ${holder.pod}`, () => core.readNamespacedPod({ namespace, name }));
    if (!pod) return false;
    const live = livePod(pod);
    if (live.uid !== holder.podUID || live.terminating || live.finished) return false;
    const endpoint = await tidepool.getPodEndpoint(namespace, name);
    return (
      endpoint?.status.podUID === holder.podUID &&
      !endpoint.metadata.deletionTimestamp &&
      endpoint.status.ips.some((e) => e.pool === holder.pool && e.address.split('/')[0] === holder.ip)
    );
  }

  /** Whether a pool record or the PodEndpoint of the group's pod UID still exists. */
  async function stillHeld(group: ReclaimGroup): Promise<boolean> {
    for (const pool of new Set(group.ips.map((i) => i.pool))) {
      const records = (await tidepool.getPool(pool))?.status?.allocatedIPs ?? {};
      if (group.ips.some((i) => i.pool === pool && records[i.ip]?.podUID === group.podUID)) return true;
    }
    return (await tidepool.getPodEndpoint(group.namespace, group.pod))?.status.podUID === group.podUID;
  }

  return {
    /**
     * Judges the cluster, or the scope's pools and namespaces, from a live read (no cache); changes nothing. The
     * gauges describe the whole cluster, so an aimed sweep leaves them alone.
     */
    async planSweep(scope: SweepScope = {}): Promise<SweepReport> {
      heartbeat();
      const stopTimer = metrics.sweepSeconds.startTimer();
      const report = await judgeCluster(kubeConfig, gc, await withinSelector(scope));
      stopTimer();
      // The report names what the sweep was aimed at; the worker's own namespace selector is its whole world.
      if (scope.pools || scope.namespaces) return { ...report, scope };
      delete report.scope;
      metrics.sweepCandidates.reset();
      for (const [reason, count] of Object.entries(report.reclaimed)) metrics.sweepCandidates.set({ reason }, count);
      metrics.sweepUnrecorded.reset();
      for (const ip of report.unrecorded) metrics.sweepUnrecorded.inc({ pool: ip.pool });
      metrics.ipConflicts.reset();
      for (const conflict of report.conflicts) {
        metrics.ipConflicts.inc({ pool: conflict.pool });
        log.error('one IP is held by more than one live pod', { pool: conflict.pool, ip: conflict.ip, holders: conflict.holders.map((h) => `${h.pod} (${h.podUID})`) });
      }
      return report;
    },

    /**
     * Records again each IP that a live pod's PodEndpoint names and its pool lost, after a live read confirms
     * the claim (a release may have run since the plan was read). A claim that only `status.podIPs` makes is
     * reported, never written: it can name an IP whose sandbox was just torn down, and recording it would leak
     * the IP. Returns how many were recorded.
     */
    async recordUnrecorded(unrecorded: UnrecordedIP[]): Promise<number> {
      let recorded = 0;
      for (const holder of unrecorded) {
        heartbeat();
        let written = false;
        if (holder.source === 'PodEndpoint' && (await stillHolds(holder))) {
          const outcome = await writer.record(holder.pool, holder).catch((error: unknown) => {
            if (error instanceof PoolNotFoundError) return undefined;
            throw error;
          });
          written = outcome?.kind === 'recorded';
        }
        if (written) {
          recorded++;
          metrics.rerecorded.inc({ pool: holder.pool, source: 'Sweep' });
          log.warn('recorded an IP that a live pod held with no record in its pool', { pool: holder.pool, ip: holder.ip, pod: holder.pod, from: holder.source });
        }
        if (written || holder.source === 'podIPs') await events.tryRecord(unrecordedIP(holder.pool, holder.ip, holder.pod, holder.source, written), warn);
      }
      return recorded;
    },

    /**
     * A Warning Event on every pod of each conflict, and on its pool: two live pods hold one IP, and no one
     * releases either. An Event that cannot be written is logged and skipped: the sweep's report, log and metric
     * carry the conflict all the same. Returns how many Events were written.
     */
    async reportConflicts(conflicts: IPConflict[]): Promise<number> {
      let written = 0;
      for (const conflict of conflicts) {
        const names = conflict.holders.map((h) => h.pod);
        const targets = [...conflict.holders.map((h) => podTarget(h.pod, h.podUID)), poolTarget(conflict.pool)];
        for (const regarding of targets) {
          try {
            if (await events.record(duplicateIP(regarding, conflict.pool, conflict.ip, names))) written++;
          } catch (error) {
            log.warn('could not write the DuplicateIP Event', { regarding: `${regarding.kind} ${regarding.name}`, ip: conflict.ip, error: (error as Error).message });
          }
        }
        heartbeat();
      }
      return written;
    },

    /**
     * Signal-with-start `reclaim` on each group's lifecycle, so the reclaim lands in that IP's own history.
     * A group whose records and endpoint are gone by now (its lifecycle reclaimed it since the plan was read)
     * is skipped, so that no needless lifecycle run is started. Returns how many groups were handed over.
     */
    async requestReclaims(groups: ReclaimGroup[]): Promise<number> {
      const client = getClient();
      let handedOver = 0;
      for (const group of groups) {
        if (!(await stillHeld(group))) continue;
        handedOver++;
        await client.workflow.signalWithStart<PodIPLifecycleWorkflow, [ReclaimRequest]>('podIPLifecycle', {
          ...lifecycleStartOptions(
            {
              namespace: group.namespace,
              pod: group.pod,
              podUID: group.podUID,
              state: 'Reclaiming',
              startedBy: `GC sweep reclaim of ${group.ips.map((r) => r.ip).join(', ')}: ${group.reason}`,
            },
            taskQueue,
          ),
          signal: reclaimSignal,
          signalArgs: [{ podUID: group.podUID, reason: group.reason, ips: group.ips }],
        });
        heartbeat();
      }
      return handedOver;
    },
  };
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;
