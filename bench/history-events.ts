// History events per pod lifecycle, from a sample of lifecycle workflows that lived through the create and
// the rebuild of bench:cluster: each one's events up to the rebuild are its create, the rest its deletion.
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { podLifecycleWorkflowId } from '../src/temporal/names.ts';

export interface LifecycleEvents {
  /** How many lifecycles were read. */
  sampled: number;
  /** Mean events per lifecycle, by event type ("WorkflowTaskCompleted"), before and from `splitAt`. */
  create: Record<string, number>;
  delete: Record<string, number>;
}

const typeName = (eventType: string) =>
  eventType
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(^|_)(\w)/g, (_, __, letter: string) => letter.toUpperCase());

/** Reads up to `sample` closed lifecycles of `namespace` started before `splitAt`; splits each history there. */
export async function lifecycleEvents(client: Client, namespace: string, splitAt: Date, sample = 30): Promise<LifecycleEvents> {
  const prefix = podLifecycleWorkflowId(namespace, '');
  const picked: { workflowId: string; runId: string }[] = [];
  const query = `WorkflowId STARTS_WITH '${prefix}' AND ExecutionStatus != 'Running' AND StartTime < '${splitAt.toISOString()}'`;
  for await (const workflow of client.workflow.list({ query })) {
    picked.push({ workflowId: workflow.workflowId, runId: workflow.runId });
    if (picked.length >= sample) break;
  }
  const create: Record<string, number> = {};
  const del: Record<string, number> = {};
  for (const { workflowId, runId } of picked) {
    const history = JSON.parse(historyToJSON(await client.workflow.getHandle(workflowId, runId).fetchHistory())) as {
      events: { eventType: string; eventTime: string }[];
    };
    for (const event of history.events) {
      const into = Date.parse(event.eventTime) < splitAt.getTime() ? create : del;
      const name = typeName(event.eventType);
      into[name] = (into[name] ?? 0) + 1;
    }
  }
  const mean = (counts: Record<string, number>) =>
    Object.fromEntries(Object.entries(counts).map(([name, count]) => [name, Math.round((count / Math.max(1, picked.length)) * 100) / 100]));
  return { sampled: picked.length, create: mean(create), delete: mean(del) };
}

/** "9 events: 1 workflow task, 1 update, 2 local activities, 0 signals" */
export function describeEvents(events: Record<string, number>): string {
  const total = Object.values(events).reduce((sum, count) => sum + count, 0);
  const of = (name: string) => events[name] ?? 0;
  return (
    `${total.toFixed(1)} events: ${of('WorkflowTaskCompleted').toFixed(1)} workflow tasks, ${of('WorkflowExecutionSignaled').toFixed(1)} signals, ` +
    `${of('WorkflowExecutionUpdateAccepted').toFixed(1)} updates, ${of('MarkerRecorded').toFixed(1)} local activities, ${of('ActivityTaskScheduled').toFixed(1)} activities, ${of('TimerStarted').toFixed(1)} timers`
  );
}
