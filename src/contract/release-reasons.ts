/**
 * Why a lifecycle's IPs were released: one typed name that the history (the lifecycle's snapshot), the metrics,
 * the sweep's report and the CLI all use. The sentence a person reads is derived from it, never parsed back.
 */

/** The releases a reclaim verdict (src/gc/verdict.ts) or the sweep decides: the pod no longer needs its IPs. */
export const RECLAIM_REASONS = [
  'PodNotFound',
  'PodReplaced',
  'PodSucceeded',
  'PodFailed',
  'TerminatingOnReadyNode',
  'TerminatingOnNotReadyNode',
  'StatefulSetScaledDown',
  'StatefulSetDeleted',
  'StaleRecord',
  'RunningWithoutPodIPs',
  'EndpointWithoutPod',
] as const;
export type ReclaimReason = (typeof RECLAIM_REASONS)[number];

/** Every release: a reclaim, or one of the lifecycle's own. */
export const RELEASE_REASONS = ['CNIDel', 'PodRecreated', 'EndpointNotWritten', ...RECLAIM_REASONS, 'RuntimeGC'] as const;
export type ReleaseReason = (typeof RELEASE_REASONS)[number];

const TEXT: Record<ReleaseReason, string> = {
  CNIDel: 'a CNI DEL from the runtime',
  PodRecreated: 'the pod was re-created under its name with a new UID, which gets IPs of its own',
  EndpointNotWritten: "given back at once: the pod's PodEndpoint could not be written",
  PodNotFound: 'the pod no longer exists',
  PodReplaced: 'the pod was replaced by another with the same name and another UID',
  PodSucceeded: 'the pod succeeded and its grace period passed',
  PodFailed: 'the pod failed and its grace period passed',
  TerminatingOnReadyNode: 'the pod stayed terminating on a Ready node past its deletionTimestamp',
  TerminatingOnNotReadyNode: 'the pod stayed terminating on a NotReady or missing node past its deletionTimestamp',
  StatefulSetScaledDown: 'its StatefulSet no longer wants this ordinal',
  StatefulSetDeleted: 'its StatefulSet was deleted',
  StaleRecord: 'a record of the live pod that neither its PodEndpoint nor its status.podIPs names',
  RunningWithoutPodIPs: 'the pod runs without status.podIPs',
  EndpointWithoutPod: 'its PodEndpoint outlived the pod',
  RuntimeGC: "released by the runtime's GC: the container runtime no longer lists the attachment as valid",
};

export function isReclaimReason(reason: ReleaseReason): reason is ReclaimReason {
  return (RECLAIM_REASONS as readonly string[]).includes(reason);
}

/** The sentence a person reads, with the reason's name: "the pod no longer exists (PodNotFound)". */
export function releaseReasonText(reason: ReleaseReason): string {
  return `${TEXT[reason]} (${reason})`;
}
