import type { DelKeepReason } from '../contract/lifecycle.ts';
import type { ReclaimReason } from '../contract/release-reasons.ts';

/**
 * The reclaim verdict: for one IP record of a pool, given what the API server says about its pod, the pod's
 * node and its StatefulSet, decide whether the IP is kept, waited on, or reclaimed, and why. Pure: the sweep
 * and the controller gather the facts, this function alone decides.
 */

export interface GcConfig {
  /** Everything off: every record is kept. */
  enabled: boolean;
  /** Reclaim pods stuck terminating on a Ready node once their grace has passed. */
  reclaimTerminatingOnReadyNode: boolean;
  /** Reclaim pods stuck terminating on a NotReady (or deleted) node once their grace has passed. */
  reclaimTerminatingOnNotReadyNode: boolean;
  /**
   * Waited after a terminating pod's deletionTimestamp (which already includes its grace period), and after a
   * finished pod's termination grace, before its IPs are reclaimed.
   */
  additionalGraceDelayMs: number;
  /**
   * A record younger than this is reclaimed only when a live GET confirms its pod is gone or replaced: the
   * pod list may predate the pod.
   */
  minRecordAgeMs: number;
  /** Reclaim a Running pod's IPs when its status has no podIPs (Spiderpool's switch, off by default). */
  reclaimRunningWithoutPodIPs: boolean;
}

export interface RecordFacts {
  ip: string;
  pool: string;
  /** `namespace/name` */
  pod: string;
  podUID: string;
  /** Epoch ms; absent on records written by hand. */
  allocatedAt?: number;
}

export interface PodFacts {
  uid: string;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  nodeName?: string;
  podIPs: string[];
  /** Epoch ms. */
  deletionTimestamp?: number;
  deletionGracePeriodSeconds?: number;
  terminationGracePeriodSeconds?: number;
  /** Epoch ms when the last container finished, for Succeeded and Failed pods. */
  finishedAt?: number;
}

export interface NodeFacts {
  name: string;
  ready: boolean;
}

/** The pod's own PodEndpoint (the one whose pod UID is the pod's): the IPs its lifecycle gave it, with their pools. */
export interface EndpointFacts {
  podUID: string;
  ips: { ip: string; pool: string }[];
}

/** The pod's StatefulSet, when the pod (or the record's pod name) belongs to one. */
export interface StatefulSetFacts {
  name: string;
  exists: boolean;
  deleting: boolean;
  replicas: number;
  ordinalStart: number;
}

export interface VerdictInput {
  record: RecordFacts;
  /** Undefined: the pod was not found. */
  pod: PodFacts | undefined;
  /** Undefined: the pod names no node, or the node does not exist. */
  node: NodeFacts | undefined;
  statefulSet: StatefulSetFacts | undefined;
  /** A GET made just now found the pod gone or carrying another UID (confirms a young record's verdict). */
  confirmedLive: boolean;
  config: GcConfig;
  /** Epoch ms. */
  now: number;
}

/** A record's verdict when its pod's PodEndpoint is known too (undefined: the pod has none). */
export type RecordVerdictInput = VerdictInput & { endpoint: EndpointFacts | undefined };

/** What the stale verdict looks at: the record, its pod and the pod's PodEndpoint. */
export type StaleRecordInput = Pick<RecordVerdictInput, 'record' | 'pod' | 'endpoint' | 'config' | 'now'>;

/** The reclaims a verdict gives; EndpointWithoutPod is the sweep's own (src/gc/plan.ts). */
export type VerdictReclaimReason = Exclude<ReclaimReason, 'EndpointWithoutPod'>;

export type KeepReason =
  | 'GCDisabled'
  | 'PodActive'
  | 'PodPending'
  | 'StatefulSetOrdinalWanted'
  | 'TerminatingOnReadyNodeSwitchOff'
  | 'TerminatingOnNotReadyNodeSwitchOff';

export type WaitReason = 'RecordTooYoung' | 'WithinGracePeriod';

export type Verdict =
  | { action: 'keep'; reason: KeepReason }
  | { action: 'wait'; until: number; reason: WaitReason }
  | { action: 'reclaim'; reason: VerdictReclaimReason };

/** The ordinal of a StatefulSet pod named `<set>-<n>`, or undefined. */
export function statefulSetOrdinal(podName: string, setName: string): number | undefined {
  if (!podName.startsWith(`${setName}-`)) return undefined;
  const suffix = podName.slice(setName.length + 1);
  return /^(0|[1-9]\d*)$/.test(suffix) ? Number(suffix) : undefined;
}

/** Whether the StatefulSet still wants the pod named `podName` (`ordinals.start <= n < start + replicas`). */
export function wantsOrdinal(set: StatefulSetFacts | undefined, podName: string): boolean {
  if (!set || !set.exists || set.deleting) return false;
  const ordinal = statefulSetOrdinal(podName, set.name);
  return ordinal !== undefined && ordinal >= set.ordinalStart && ordinal < set.ordinalStart + set.replicas;
}

export type DelVerdict = { action: 'keep'; reason: DelKeepReason } | { action: 'release' };

export interface DelVerdictInput {
  /** `namespace/name` */
  pod: string;
  /** The pod UID the DEL names. */
  podUID: string;
  /** Undefined: the pod was not found. */
  podFacts: PodFacts | undefined;
  /** The pod's StatefulSet, when it belongs to one; read only when the pod is not live. */
  statefulSet?: StatefulSetFacts | undefined;
}

/** The pod of this UID exists, is not being deleted and has not finished: its containers may run again. */
export function podLive(pod: PodFacts | undefined, podUID: string): boolean {
  return pod !== undefined && pod.uid === podUID && pod.deletionTimestamp === undefined && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
}

/**
 * What a CNI DEL does with the IPs of the sandbox it tears down. A live pod keeps them for its next sandbox: a
 * runtime tears a live pod's sandbox down and starts another after a node reboot or a failed start, and an
 * underlay IP is the application's, not the sandbox's. The kubelet DELs a deleted pod only after its
 * deletionTimestamp is set, so a DEL of a pod being deleted, finished or gone releases, unless its StatefulSet
 * still wants the ordinal. An IP kept for a pod that is then deleted is reclaimed by the pod's own verdict.
 */
export function delVerdict(input: DelVerdictInput): DelVerdict {
  if (podLive(input.podFacts, input.podUID)) return { action: 'keep', reason: 'PodLive' };
  if (wantsOrdinal(input.statefulSet, input.pod.split('/')[1] ?? '')) return { action: 'keep', reason: 'StatefulSetOrdinalWanted' };
  return { action: 'release' };
}

const reclaim = (reason: VerdictReclaimReason): Verdict => ({ action: 'reclaim', reason });
const keep = (reason: KeepReason): Verdict => ({ action: 'keep', reason });

/** Reclaims `reason` unless the record is too young to trust the pod list without a live confirmation. */
function unlessTooYoung(input: VerdictInput, reason: VerdictReclaimReason): Verdict {
  const { record, config, now, confirmedLive } = input;
  if (!confirmedLive && record.allocatedAt !== undefined && now - record.allocatedAt < config.minRecordAgeMs) {
    return { action: 'wait', until: record.allocatedAt + config.minRecordAgeMs, reason: 'RecordTooYoung' };
  }
  return reclaim(reason);
}

/**
 * Waits until `graceEnds`, then applies the node-readiness switches. `finishedReason` names a finished pod's
 * reclaim; a terminating pod's reason says which kind of node it was on.
 */
function afterGrace(input: VerdictInput, graceEnds: number, finishedReason: VerdictReclaimReason | undefined): Verdict {
  const { config, now, node } = input;
  if (now < graceEnds) return { action: 'wait', until: graceEnds, reason: 'WithinGracePeriod' };
  if (node?.ready) {
    if (!config.reclaimTerminatingOnReadyNode) return keep('TerminatingOnReadyNodeSwitchOff');
    return reclaim(finishedReason ?? 'TerminatingOnReadyNode');
  }
  if (!config.reclaimTerminatingOnNotReadyNode) return keep('TerminatingOnNotReadyNodeSwitchOff');
  return reclaim(finishedReason ?? 'TerminatingOnNotReadyNode');
}

export function verdict(input: VerdictInput): Verdict {
  const { record, pod, statefulSet, config, now } = input;
  if (!config.enabled) return keep('GCDisabled');
  const wanted = wantsOrdinal(statefulSet, record.pod.split('/')[1] ?? '');

  if (!pod) {
    if (wanted) return keep('StatefulSetOrdinalWanted');
    if (!statefulSet) return unlessTooYoung(input, 'PodNotFound');
    return unlessTooYoung(input, statefulSet.exists && !statefulSet.deleting ? 'StatefulSetScaledDown' : 'StatefulSetDeleted');
  }

  if (pod.uid !== record.podUID) {
    // A StatefulSet pod re-created under its name takes the record over at its ADD; until it has IPs of its
    // own, the record is its reservation.
    if (wanted && pod.podIPs.length === 0) return keep('StatefulSetOrdinalWanted');
    return unlessTooYoung(input, 'PodReplaced');
  }

  if (pod.deletionTimestamp !== undefined) {
    if (wanted) return keep('StatefulSetOrdinalWanted');
    // The deletionTimestamp is the end of the grace period: the pod's containers are dead by then.
    return afterGrace(input, pod.deletionTimestamp + config.additionalGraceDelayMs, undefined);
  }

  if (pod.phase === 'Succeeded' || pod.phase === 'Failed') {
    if (wanted) return keep('StatefulSetOrdinalWanted');
    const finished = pod.finishedAt ?? now;
    const grace = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
    return afterGrace(input, finished + grace + config.additionalGraceDelayMs, pod.phase === 'Succeeded' ? 'PodSucceeded' : 'PodFailed');
  }

  if (pod.phase === 'Pending') return keep('PodPending');
  if (pod.phase === 'Running' && pod.podIPs.length === 0 && config.reclaimRunningWithoutPodIPs) {
    return unlessTooYoung(input, 'RunningWithoutPodIPs');
  }
  return keep('PodActive');
}

/**
 * A live pod's record that nothing the pod uses names: neither its own PodEndpoint nor its `status.podIPs`
 * lists the IP (a sandbox the runtime replaced left it, or an ADD whose rollback failed). Such a record is
 * reclaimed once it is older than the minimum record age, which an ADD writing its record and then its
 * PodEndpoint never reaches. A record the PodEndpoint names is the pod's, whatever container it carries: a
 * re-created sandbox takes its record over before the PodEndpoint says so. Undefined when the record is not a
 * live pod's (the pod verdict decides) or the pod uses it.
 */
export function staleRecordVerdict(input: StaleRecordInput): Verdict | undefined {
  const { record, pod, endpoint, config, now } = input;
  if (!config.enabled || !pod || pod.uid !== record.podUID || pod.deletionTimestamp !== undefined) return undefined;
  if (pod.phase === 'Succeeded' || pod.phase === 'Failed' || pod.podIPs.includes(record.ip)) return undefined;
  if (endpoint?.podUID === pod.uid && endpoint.ips.some((entry) => entry.ip === record.ip && entry.pool === record.pool)) return undefined;
  if (record.allocatedAt !== undefined && now - record.allocatedAt < config.minRecordAgeMs) {
    return { action: 'wait', until: record.allocatedAt + config.minRecordAgeMs, reason: 'RecordTooYoung' };
  }
  return reclaim('StaleRecord');
}

/** The verdict of one pool record: stale for its live pod, or else what its pod, node and StatefulSet say. */
export function recordVerdict(input: RecordVerdictInput): Verdict {
  return staleRecordVerdict(input) ?? verdict(input);
}
