import { ScheduleAlreadyRunning, type Client, type ScheduleHandle } from '@temporalio/client';
import { GC_SCHEDULE_ID, TASK_QUEUE } from '../temporal/names.ts';
import type { SweepInput } from '../contract/pools.ts';

/** The Schedule of a task queue: `tidepool-gc` for the default queue, `tidepool-gc-<queue>` for another. */
export function gcScheduleId(taskQueue: string): string {
  return taskQueue === TASK_QUEUE ? GC_SCHEDULE_ID : `${GC_SCHEDULE_ID}-${taskQueue}`;
}

export interface GcScheduleOptions {
  intervalMs: number;
  taskQueue?: string;
  scheduleId?: string;
}

/**
 * Creates the tidepool-gc Schedule, or brings an existing one to these settings: a gcSweep every interval,
 * overlapping runs skipped, runs missed for longer than one interval not caught up. Idempotent, so every
 * worker replica may call it at start.
 */
export async function ensureGcSchedule(client: Client, options: GcScheduleOptions): Promise<ScheduleHandle> {
  const scheduleId = options.scheduleId ?? gcScheduleId(options.taskQueue ?? TASK_QUEUE);
  const spec = { intervals: [{ every: options.intervalMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'gcSweep',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    args: [{ dryRun: false }] satisfies [SweepInput],
    workflowId: scheduleId,
  };
  const policies = { overlap: 'SKIP' as const, catchupWindow: options.intervalMs };
  try {
    return await client.schedule.create({ scheduleId, spec, action, policies });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    const handle = client.schedule.getHandle(scheduleId);
    await handle.update((previous) => ({ ...previous, spec, action, policies }));
    return handle;
  }
}
