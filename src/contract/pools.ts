// The contract of the pool-deletion and GC sweep workflows, for the controller, the Schedule, the CLI and
// the workflows themselves.
import { defineSignal } from '@temporalio/workflow';

/** The terminating pool's status changed (an IP was released): the pool-deletion workflow looks again now. */
export const poolReleasedSignal = defineSignal('released');

export interface PoolDeletionResult {
  pool: string;
  checks: number;
}

/** `poolDeletion` in src/workflows: waits until the pool holds no IP, then removes its finalizer. */
export type PoolDeletionWorkflow = (pool: string, recheckEvery?: string | number) => Promise<PoolDeletionResult>;

/** Which records a sweep judges: those of these pools and of pods in these namespaces (all when a list is absent). */
export interface SweepScope {
  pools?: string[];
  namespaces?: string[];
  /**
   * Existing namespaces outside the worker's namespace selector, whose records it leaves alone. A namespace
   * that no longer exists is in every worker's scope: no live pod can hold its records.
   */
  excludeNamespaces?: string[];
}

export interface SweepInput extends SweepScope {
  dryRun?: boolean;
}

/** `gcSweep` in src/workflows; its result is the sweep's report (src/gc/plan.ts). */
export type GcSweepWorkflow = (input?: SweepInput) => Promise<unknown>;
