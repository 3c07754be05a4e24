import { getClient, heartbeat } from '@temporalio/activity';
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { KubeConfig } from '@kubernetes/client-node';
import { runtimeGcReleaseUpdate, type PodIPLifecycleWorkflow } from '../contract/lifecycle.ts';
import type { RuntimeGcInput, RuntimeGcPlan } from '../contract/runtime-gc.ts';
import { planRuntimeGc } from '../gc/runtime-gc.ts';
import type { GcConfig } from '../gc/verdict.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { lifecycleStartOptions } from '../temporal/lifecycle-start.ts';

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
          ...lifecycleStartOptions(
            {
              namespace: stale.namespace,
              pod: stale.pod,
              podUID: stale.podUID,
              node: input.node,
              state: 'Releasing',
              startedBy: `the runtime's GC of network ${input.network}: ${stale.ips.map((i) => i.ip).join(', ')} on interface ${stale.interface}`,
            },
            taskQueue,
          ),
          workflowIdConflictPolicy: 'USE_EXISTING',
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
