import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { SweepScope } from '../contract/pools.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeCall, kubeGetOptional } from '../k8s/errors.ts';
import { livePod, nodeFacts, podFacts, statefulSetFacts, statefulSetOwner } from './facts.ts';
import { planSweep, type ClusterSnapshot, type SweepReport } from './plan.ts';
import type { GcConfig } from './verdict.ts';

/** Reads pools, then pods, nodes, StatefulSets and PodEndpoints from the API server (no cache). */
export async function readClusterSnapshot(kubeConfig: KubeConfig): Promise<ClusterSnapshot> {
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const pools = (await tidepool.listPools()).items;
  const [pods, nodes, sets, endpoints] = await Promise.all([
    kubeCall('list pods', () => core.listPodForAllNamespaces()),
    kubeCall('list nodes', () => core.listNode()),
    kubeCall('list StatefulSets', () => apps.listStatefulSetForAllNamespaces()),
    tidepool.listPodEndpoints(),
  ]);
  return {
    pools,
    pods: new Map(
      pods.items.map((pod) => {
        const owner = statefulSetOwner(pod);
        return [`${pod.metadata?.namespace}/${pod.metadata?.name}`, { ...podFacts(pod), ...(owner ? { statefulSet: owner } : {}) }];
      }),
    ),
    nodes: new Map(nodes.items.map((node) => [node.metadata?.name ?? '', nodeFacts(node)])),
    statefulSets: new Map(sets.items.map((set) => [`${set.metadata?.namespace}/${set.metadata?.name}`, statefulSetFacts(set.metadata?.name ?? '', set)])),
    endpoints,
    livePods: pods.items.map(livePod),
  };
}

/** A sweep's judgement of the live cluster, or of the scope's pools and namespaces; changes nothing. */
export async function judgeCluster(kubeConfig: KubeConfig, gc: GcConfig, scope: SweepScope = {}): Promise<SweepReport> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const snapshot = await readClusterSnapshot(kubeConfig);
  return planSweep(snapshot, gc, Date.now(), async (namespace, name, uid) => {
    const live = await kubeGetOptional(`get pod ${namespace}/${name}`, () => core.readNamespacedPod({ namespace, name }));
    return !live || live.metadata?.uid !== uid;
  }, scope);
}
