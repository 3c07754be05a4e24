import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { livePod } from '../gc/facts.ts';
import { liveHolders, type Holder } from '../ipam/holders.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeCall } from '../k8s/errors.ts';

/** The live holders of IPs, and the UIDs of the live pods, for a pool that must be reconciled. */
export interface HolderSource {
  read(): Promise<{ holders: Holder[]; liveUIDs: Set<string> }>;
}

/**
 * Reads the holders from the API server itself (PodEndpoints, then pods that have not finished), not from a
 * watch cache: a reconciliation runs once per pool object, and a cache a moment old could miss the holder that
 * an ADD recorded just before the pool was lost.
 */
export function apiHolderSource(kubeConfig: KubeConfig): HolderSource {
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return {
    async read() {
      const endpoints = await tidepool.listPodEndpoints();
      const pods = await kubeCall('list pods', () =>
        core.listPodForAllNamespaces({ fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed' }),
      );
      const live = pods.items.map(livePod);
      return { holders: liveHolders(endpoints, live), liveUIDs: new Set(live.map((pod) => pod.uid)) };
    },
  };
}
