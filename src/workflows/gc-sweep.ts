import { proxyActivities, upsertMemo } from '@temporalio/workflow';
import type { SweepActivities } from '../activities/sweep.ts';
import type { SweepReport } from '../gc/plan.ts';
import type { GcSweepWorkflow, SweepInput } from '../contract/pools.ts';

const { planSweep, requestReclaims, recordUnrecorded, reportConflicts } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
});

/**
 * One GC sweep: judge every pool record and PodEndpoint from a live read of the cluster, then hand each leak
 * to its pod's lifecycle (signal-with-start `reclaim`), which releases it by compare-and-delete and records
 * why. IPs that live pods hold with no record in their pool are recorded again; IPs two live pods hold are
 * reported (an Event on each pod), never released. A dry run returns the same report and changes nothing. An
 * aimed sweep (`pools`, `namespaces`) judges only those records. Run by the tidepool-gc Schedule (the whole
 * cluster), once at worker start, and on demand (`tidepool gc`).
 */
export async function gcSweep(input: SweepInput = {}): Promise<SweepReport> {
  const scope = { ...(input.pools ? { pools: input.pools } : {}), ...(input.namespaces ? { namespaces: input.namespaces } : {}) };
  const report = { ...(await planSweep(scope)), dryRun: Boolean(input.dryRun) };
  if (!report.dryRun && report.reclaims.length > 0) await requestReclaims(report.reclaims);
  // Reports of a worker older than the unrecorded and conflict categories carry neither.
  const unrecorded = report.unrecorded ?? [];
  const conflicts = report.conflicts ?? [];
  if (!report.dryRun && unrecorded.length > 0) await recordUnrecorded(unrecorded);
  if (!report.dryRun && conflicts.length > 0) await reportConflicts(conflicts);
  upsertMemo({ reclaimed: report.reclaimed, kept: report.kept, waiting: report.waiting, unrecorded: unrecorded.length, conflicts: conflicts.length });
  return report;
}

gcSweep satisfies GcSweepWorkflow;
