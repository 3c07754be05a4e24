import { proxyActivities } from '@temporalio/workflow';
import type { RuntimeGcActivities } from '../activities/runtime-gc.ts';
import type { RuntimeGcInput, RuntimeGcResult, RuntimeGcWorkflow } from '../contract/runtime-gc.ts';

const { planRuntimeGc, releaseStaleAttachments } = proxyActivities<RuntimeGcActivities>({
  startToCloseTimeout: '1m',
  heartbeatTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '5s', maximumAttempts: 5 },
});

/**
 * runtime-gc/<node>/<network>: one CNI GC from the container runtime, started by the node's agent. Plans from
 * a live read of the pools which attachments of the network on the node the runtime no longer lists, then
 * hands each to its pod's lifecycle, which releases it (reason RuntimeGC) in its own history.
 */
export async function runtimeGc(input: RuntimeGcInput): Promise<RuntimeGcResult> {
  const plan = await planRuntimeGc(input);
  const released = plan.stale.length > 0 ? await releaseStaleAttachments({ input, plan }) : [];
  return {
    network: input.network,
    node: input.node,
    validAttachments: input.validAttachments.length,
    stale: plan.stale.length,
    tooYoung: plan.tooYoung,
    released,
  };
}

runtimeGc satisfies RuntimeGcWorkflow;
