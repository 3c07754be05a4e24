import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const TASK_QUEUE = 'tidepool';
export const GC_SCHEDULE_ID = 'tidepool-gc';

export function podLifecycleWorkflowId(namespace: string, pod: string): string {
  return `pod-ip/${namespace}/${pod}`;
}

/** One runtime GC (CNI GC) of one network on one node at a time. */
export function runtimeGcWorkflowId(node: string, network: string): string {
  return `runtime-gc/${node}/${network}`;
}

export function poolDeletionWorkflowId(pool: string): string {
  return `pool-deletion/${pool}`;
}

/** `ns/name` of the pod a lifecycle belongs to. */
export const TidepoolPod = defineSearchAttributeKey('TidepoolPod', SearchAttributeType.KEYWORD);
export const TidepoolPodUID = defineSearchAttributeKey('TidepoolPodUID', SearchAttributeType.KEYWORD);
export const TidepoolNode = defineSearchAttributeKey('TidepoolNode', SearchAttributeType.KEYWORD);
/** Every IP the lifecycle has held; operators query `TidepoolIPs = '10.6.168.131'`. */
export const TidepoolIPs = defineSearchAttributeKey('TidepoolIPs', SearchAttributeType.KEYWORD_LIST);
export const TidepoolPools = defineSearchAttributeKey('TidepoolPools', SearchAttributeType.KEYWORD_LIST);
/** `Allocated`, `Released`, `Reclaimed`, ... */
export const TidepoolState = defineSearchAttributeKey('TidepoolState', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTES = [
  TidepoolPod,
  TidepoolPodUID,
  TidepoolNode,
  TidepoolIPs,
  TidepoolPools,
  TidepoolState,
] as const;
