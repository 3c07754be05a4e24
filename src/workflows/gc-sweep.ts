import { proxyActivities, upsertMemo } from '@temporalio/workflow';
import type { SweepActivities } from '../activities/sweep.ts';
import type { SweepReport } from '../gc/plan.ts';

const { planSweep, requestReclaims } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '5m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
});

export interface SweepInput {
  dryRun?: boolean;
}

/**
 * One GC sweep: judge every pool record and PodEndpoint from a live read of the cluster, then hand each leak
 * to its pod's lifecycle (signal-with-start `reclaim`), which releases it by compare-and-delete and records
 * why. A dry run returns the same report and changes nothing. Run by the tidepool-gc Schedule, once at worker
 * start, and on demand (`tidepool gc`).
 */
export async function gcSweep(input: SweepInput = {}): Promise<SweepReport> {
  const report = { ...(await planSweep()), dryRun: Boolean(input.dryRun) };
  if (!report.dryRun && report.reclaims.length > 0) await requestReclaims(report.reclaims);
  upsertMemo({ reclaimed: report.reclaimed, kept: report.kept, waiting: report.waiting });
  return report;
}
