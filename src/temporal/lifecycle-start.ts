import type { SearchAttributePair } from '@temporalio/common';
import type { LifecycleInput } from '../contract/lifecycle.ts';
import { lifecycleStaticDetails, lifecycleSummary, type LifecycleStart } from './lifecycle-details.ts';
import { podLifecycleWorkflowId, TidepoolNode, TidepoolPod, TidepoolPodUID, TidepoolState } from './names.ts';

/**
 * The options every starter of a pod's lifecycle gives (the agent's ADD, the sweep's reclaim, the runtime's
 * GC): its workflow ID, input, search attributes with the state it starts in, and the UI's summary and details.
 */
export function lifecycleStartOptions(start: LifecycleStart & { state: string }, taskQueue: string) {
  const { namespace, pod, podUID, node, state } = start;
  const typedSearchAttributes: SearchAttributePair[] = [
    { key: TidepoolPod, value: `${namespace}/${pod}` },
    { key: TidepoolPodUID, value: podUID },
    { key: TidepoolState, value: state },
    ...(node ? [{ key: TidepoolNode, value: node }] : []),
  ];
  const args: [LifecycleInput] = [{ namespace, pod }];
  return {
    workflowId: podLifecycleWorkflowId(namespace, pod),
    taskQueue,
    args,
    typedSearchAttributes,
    staticSummary: lifecycleSummary(namespace, pod),
    staticDetails: lifecycleStaticDetails({ namespace, pod, podUID, ...(node ? { node } : {}), startedBy: start.startedBy }),
  };
}
