import { condition, proxyActivities, setCurrentDetails, setHandler } from '@temporalio/workflow';
import type { PoolDeletionActivities } from '../activities/pool-deletion.ts';
import { poolReleasedSignal, type PoolDeletionResult, type PoolDeletionWorkflow } from '../contract/pools.ts';

const { poolDeletionState, releasePoolFinalizer } = proxyActivities<PoolDeletionActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

/**
 * pool-deletion/<pool>: started when an IPPool gets a deletionTimestamp. The pool takes no new allocations
 * (the allocator skips terminating pools) while releases still work; this workflow waits, on durable timers
 * and `released` signals, until the pool holds no IP, then removes the ip-protection finalizer so that the
 * pool disappears. Each check is an activity in the history, with what the pool still held.
 */
export async function poolDeletion(pool: string, recheckEvery: string | number = '30s'): Promise<PoolDeletionResult> {
  let released = false;
  setHandler(poolReleasedSignal, () => void (released = true));
  for (let checks = 1; ; checks++) {
    const state = await poolDeletionState(pool);
    if (state.gone) return { pool, checks };
    if (state.allocated === 0 && (await releasePoolFinalizer(pool))) return { pool, checks };
    setCurrentDetails(`IPPool ${pool} is being deleted; waiting for ${state.allocated} allocated IPs to be released: ${state.holders.join(', ')}`);
    released = false;
    await condition(() => released, recheckEvery);
  }
}

poolDeletion satisfies PoolDeletionWorkflow;
