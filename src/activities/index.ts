import type { KubeConfig } from '@kubernetes/client-node';
import type { GcConfig } from '../gc/verdict.ts';
import type { PoolStore } from '../ipam/allocator.ts';
import type { ClusterCache } from '../k8s/cache.ts';
import type { TidepoolMetrics } from '../metrics.ts';
import { createAllocationActivities } from './allocation.ts';
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
  return {
    ...createAllocationActivities({ kubeConfig, store, cache, metrics }),
    ...createEndpointActivities({ kubeConfig }),
    ...createJudgeActivities({ kubeConfig, gc }),
    ...createStaleRecordActivities({ kubeConfig, store, gc, metrics }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
