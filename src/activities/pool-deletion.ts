import type { KubeConfig } from '@kubernetes/client-node';
import { TidepoolClient } from '../k8s/client.ts';
import { KubeApiError } from '../k8s/errors.ts';
import { IP_PROTECTION_FINALIZER } from '../k8s/types.ts';

export interface PoolDeletionState {
  /** The pool no longer exists (its finalizer was removed, or someone else removed it). */
  gone: boolean;
  allocated: number;
  /** The first holders, for the history. */
  holders: string[];
}

/** The pool-deletion workflow's activities: read how many IPs a terminating pool still holds; drop its finalizer. */
export function createPoolDeletionActivities({ kubeConfig }: { kubeConfig: KubeConfig }) {
  const client = new TidepoolClient(kubeConfig);
  return {
    async poolDeletionState(pool: string): Promise<PoolDeletionState> {
      const current = await client.getPool(pool);
      if (!current) return { gone: true, allocated: 0, holders: [] };
      const records = Object.entries(current.status?.allocatedIPs ?? {});
      return { gone: false, allocated: records.length, holders: records.slice(0, 5).map(([ip, r]) => `${ip} (${r.pod})`) };
    },

    /** Removes the ip-protection finalizer once the pool holds no IP; false when an IP was allocated meanwhile. */
    async releasePoolFinalizer(pool: string): Promise<boolean> {
      const current = await client.getPool(pool);
      if (!current) return true;
      if (Object.keys(current.status?.allocatedIPs ?? {}).length > 0) return false;
      const finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== IP_PROTECTION_FINALIZER);
      try {
        await client.replacePool({ ...current, metadata: { ...current.metadata, finalizers } });
      } catch (error) {
        if (error instanceof KubeApiError && (error.notFound || error.conflict)) return !error.conflict;
        throw error;
      }
      return true;
    },
  };
}

export type PoolDeletionActivities = ReturnType<typeof createPoolDeletionActivities>;
