import { heartbeat, getClient } from '@temporalio/activity';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ReclaimGroup, SweepReport } from '../gc/plan.ts';
import { judgeCluster } from '../gc/snapshot.ts';
import type { GcConfig } from '../gc/verdict.ts';
import { TidepoolClient } from '../k8s/client.ts';
import type { TidepoolMetrics } from '../metrics.ts';
import { podLifecycleWorkflowId, TidepoolPod, TidepoolPodUID, TidepoolState } from '../temporal/names.ts';
import { reclaimSignal, type ReclaimRequest } from '../workflows/definitions.ts';
import type { podIPLifecycle } from '../workflows/pod-ip-lifecycle.ts';
import { lifecycleStaticDetails, lifecycleSummary } from '../workflows/lifecycle-details.ts';

/** The sweep's activities: a live read and judgement of the cluster, and the hand-over of each leak to its lifecycle. */
export function createSweepActivities({
  kubeConfig,
  gc,
  taskQueue,
  metrics,
}: {
  kubeConfig: KubeConfig;
  gc: GcConfig;
  taskQueue: string;
  metrics: TidepoolMetrics;
}) {
  const tidepool = new TidepoolClient(kubeConfig);

  /** Whether a pool record or the PodEndpoint of the group's pod UID still exists. */
  async function stillHeld(group: ReclaimGroup): Promise<boolean> {
    for (const pool of new Set(group.ips.map((i) => i.pool))) {
      const records = (await tidepool.getPool(pool))?.status?.allocatedIPs ?? {};
      if (group.ips.some((i) => i.pool === pool && records[i.ip]?.podUID === group.podUID)) return true;
    }
    return (await tidepool.getPodEndpoint(group.namespace, group.pod))?.status.podUID === group.podUID;
  }

  return {
    /** Judges the cluster from a live read (no cache); changes nothing. */
    async planSweep(): Promise<SweepReport> {
      heartbeat();
      const stopTimer = metrics.sweepSeconds.startTimer();
      const report = await judgeCluster(kubeConfig, gc);
      stopTimer();
      metrics.sweepCandidates.reset();
      for (const [reason, count] of Object.entries(report.reclaimed)) metrics.sweepCandidates.set({ reason }, count);
      return report;
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
        await client.workflow.signalWithStart<typeof podIPLifecycle, [ReclaimRequest]>('podIPLifecycle', {
          workflowId: podLifecycleWorkflowId(group.namespace, group.pod),
          taskQueue,
          args: [{ namespace: group.namespace, pod: group.pod }],
          signal: reclaimSignal,
          signalArgs: [{ podUID: group.podUID, reason: group.reason, ips: group.ips }],
          typedSearchAttributes: [
            { key: TidepoolPod, value: `${group.namespace}/${group.pod}` },
            { key: TidepoolPodUID, value: group.podUID },
            { key: TidepoolState, value: 'Reclaiming' },
          ],
          staticSummary: lifecycleSummary(group.namespace, group.pod),
          staticDetails: lifecycleStaticDetails({
            namespace: group.namespace,
            pod: group.pod,
            podUID: group.podUID,
            startedBy: `GC sweep reclaim of ${group.ips.map((r) => r.ip).join(', ')}: ${group.reason}`,
          }),
        });
        heartbeat();
      }
      return handedOver;
    },
  };
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;
