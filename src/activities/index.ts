import type { KubeConfig } from '@kubernetes/client-node';
import type { GcConfig } from '../gc/verdict.ts';
import type { PoolStore } from '../ipam/allocator.ts';
import type { ClusterCache } from '../k8s/cache.ts';
import type { TidepoolMetrics } from '../metrics.ts';
import { createAllocationActivities } from './allocation.ts';
import { createAttachmentActivities } from './attachments.ts';
import { createEndpointActivities } from './endpoints.ts';
import { createJudgeActivities } from './judge.ts';
import { createStaleRecordActivities } from './stale-records.ts';

export interface ActivityDependencies {
  kubeConfig: KubeConfig;
  store: PoolStore;
  cache: ClusterCache;
  gc: GcConfig;
  metrics: TidepoolMetrics;
}

/**
 * The activities of the pod IP lifecycle. Each is idempotent, so Temporal may retry any of them after a crash
 * at any point: allocation is keyed on (pod UID, interface), release is compare-and-delete on (IP, pod UID).
 */
export function createActivities({ kubeConfig, store, cache, gc, metrics }: ActivityDependencies) {
  const allocation = createAllocationActivities({ kubeConfig, store, cache, metrics });
  const endpoints = createEndpointActivities({ kubeConfig });
  // judgeDel is a part of detachInterface, not an activity of its own.
  const { judgeDel, ...judge } = createJudgeActivities({ kubeConfig, gc });
  return {
    ...allocation,
    ...endpoints,
    ...judge,
    ...createAttachmentActivities({ ...allocation, ...endpoints, judgeDel }),
    ...createStaleRecordActivities({ kubeConfig, store, gc, metrics }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
