import { getClient, heartbeat } from '@temporalio/activity';
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { KubeConfig } from '@kubernetes/client-node';
import { runtimeGcReleaseUpdate, type PodIPLifecycleWorkflow } from '../contract/lifecycle.ts';
import type { RuntimeGcInput, RuntimeGcPlan } from '../contract/runtime-gc.ts';
import { planRuntimeGc } from '../gc/runtime-gc.ts';
import type { GcConfig } from '../gc/verdict.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { lifecycleStaticDetails, lifecycleSummary } from '../temporal/lifecycle-details.ts';
import { podLifecycleWorkflowId, TidepoolNode, TidepoolPod, TidepoolPodUID, TidepoolState } from '../temporal/names.ts';

/** The runtime GC's activities: the plan from a live read of the pools, and the hand-over of each stale attachment to its lifecycle. */
export function createRuntimeGcActivities({ kubeConfig, gc, taskQueue }: { kubeConfig: KubeConfig; gc: GcConfig; taskQueue: string }) {
  const tidepool = new TidepoolClient(kubeConfig);
  return {
    async planRuntimeGc(input: RuntimeGcInput): Promise<RuntimeGcPlan> {
      const { items } = await tidepool.listPools();
      return planRuntimeGc(items, input, gc.minRecordAgeMs, Date.now());
    },

    /**
     * Update-with-start `runtimeGcRelease` on each stale attachment's lifecycle, so that the release lands in
     * that pod's own history, waits for any ADD the lifecycle is handling, and is compare-and-delete there.
     * Returns the IPs whose records were released.
     */
    async releaseStaleAttachments({ input, plan }: { input: RuntimeGcInput; plan: RuntimeGcPlan }): Promise<string[]> {
      const client = getClient();
      const released: string[] = [];
      for (const stale of plan.stale) {
        const start = new WithStartWorkflowOperation<PodIPLifecycleWorkflow>('podIPLifecycle', {
          workflowId: podLifecycleWorkflowId(stale.namespace, stale.pod),
          taskQueue,
          args: [{ namespace: stale.namespace, pod: stale.pod }],
          workflowIdConflictPolicy: 'USE_EXISTING',
          typedSearchAttributes: [
            { key: TidepoolPod, value: `${stale.namespace}/${stale.pod}` },
            { key: TidepoolPodUID, value: stale.podUID },
            { key: TidepoolNode, value: input.node },
            { key: TidepoolState, value: 'Releasing' },
          ],
          staticSummary: lifecycleSummary(stale.namespace, stale.pod),
          staticDetails: lifecycleStaticDetails({
            namespace: stale.namespace,
            pod: stale.pod,
            podUID: stale.podUID,
            node: input.node,
            startedBy: `the runtime's GC of network ${input.network}: ${stale.ips.map((i) => i.ip).join(', ')} on interface ${stale.interface}`,
          }),
        });
        const result = await client.workflow.executeUpdateWithStart(runtimeGcReleaseUpdate, {
          args: [
            {
              podUID: stale.podUID,
              containerID: stale.containerID,
              interface: stale.interface,
              network: input.network,
              node: input.node,
              validAttachments: input.validAttachments.length,
              ips: stale.ips,
              allocatedBefore: plan.allocatedBefore,
            },
          ],
          startWorkflowOperation: start,
        });
        released.push(...result.released);
        heartbeat();
      }
      return released;
    },
  };
}

export type RuntimeGcActivities = ReturnType<typeof createRuntimeGcActivities>;
