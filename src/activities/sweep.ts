import { heartbeat, getClient } from '@temporalio/activity';
import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { nodeFacts, podFacts, statefulSetFacts, statefulSetOwner } from '../gc/facts.ts';
import { planSweep, type ClusterSnapshot, type ReclaimGroup, type SweepReport } from '../gc/plan.ts';
import type { GcConfig } from '../gc/verdict.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeCall, kubeGetOptional } from '../k8s/errors.ts';
import { podLifecycleWorkflowId, TidepoolPod, TidepoolPodUID, TidepoolState } from '../temporal/names.ts';
import { reclaimSignal, type ReclaimRequest } from '../workflows/definitions.ts';
import type { podIPLifecycle } from '../workflows/pod-ip-lifecycle.ts';

/** The sweep's activities: a live read and judgement of the cluster, and the hand-over of each leak to its lifecycle. */
export function createSweepActivities({ kubeConfig, gc, taskQueue }: { kubeConfig: KubeConfig; gc: GcConfig; taskQueue: string }) {
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);

  return {
    /** Reads pools, then pods, nodes, StatefulSets and PodEndpoints from the API server (no cache), and judges. */
    async planSweep(): Promise<SweepReport> {
      const pools = (await tidepool.listPools()).items;
      const [pods, nodes, sets, endpoints] = await Promise.all([
        kubeCall('list pods', () => core.listPodForAllNamespaces()),
        kubeCall('list nodes', () => core.listNode()),
        kubeCall('list StatefulSets', () => apps.listStatefulSetForAllNamespaces()),
        tidepool.listPodEndpoints(),
      ]);
      heartbeat();
      const snapshot: ClusterSnapshot = {
        pools,
        pods: new Map(
          pods.items.map((pod) => {
            const owner = statefulSetOwner(pod);
            return [`${pod.metadata?.namespace}/${pod.metadata?.name}`, { ...podFacts(pod), ...(owner ? { statefulSet: owner } : {}) }];
          }),
        ),
        nodes: new Map(nodes.items.map((node) => [node.metadata?.name ?? '', nodeFacts(node)])),
        statefulSets: new Map(
          sets.items.map((set) => [`${set.metadata?.namespace}/${set.metadata?.name}`, statefulSetFacts(set.metadata?.name ?? '', set)]),
        ),
        endpoints,
      };
      return planSweep(snapshot, gc, Date.now(), async (namespace, name, uid) => {
        const live = await kubeGetOptional(`get pod ${namespace}/${name}`, () => core.readNamespacedPod({ namespace, name }));
        return !live || live.metadata?.uid !== uid;
      });
    },

    /** Signal-with-start `reclaim` on each group's lifecycle, so the reclaim lands in that IP's own history. */
    async requestReclaims(groups: ReclaimGroup[]): Promise<number> {
      const client = getClient();
      for (const group of groups) {
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
        });
        heartbeat();
      }
      return groups.length;
    },
  };
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;
