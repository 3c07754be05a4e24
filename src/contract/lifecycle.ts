// The contract between the layers of a pod's IP lifecycle: the workflow's updates, signals and query, the
// activities' inputs and results, and the one shape of an IP. The agent, the controller, the sweep, the
// workflows and the activities all import it; it imports nothing of Tidepool's.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ReclaimReason, ReleaseReason } from './release-reasons.ts';

export type Family = 4 | 6;

export interface Route {
  dst: string;
  gw: string;
}

/** A CNI ADD for one interface of one pod. */
export interface AllocateRequest {
  podUID: string;
  containerID: string;
  interface: string;
  defaultPools: DefaultPools;
  /** The CNI network (the configuration's `name`); absent from agents older than it. */
  network?: string;
  /** The node the ADD came from, for a pod whose spec names none. */
  node?: string;
}

export interface AllocateResult {
  ips: PodIP[];
}

/** A CNI DEL for one interface. */
export interface ReleaseRequest {
  podUID: string;
  containerID: string;
  interface: string;
}

export interface ReleaseResult {
  released: string[];
  /** IPs kept for a StatefulSet pod whose ordinal is still wanted. */
  retained: string[];
  /** Why nothing (or only part) was released, for the agent's log. */
  note?: string;
}

export type LifecycleState = 'Allocating' | 'Allocated' | 'Retained' | 'Released' | 'Reclaimed' | 'Failed';

export interface InterfaceAllocation {
  containerID: string;
  ips: PodIP[];
  network?: string;
  /** Epoch ms of the ADD that gave this container its IPs; absent in histories written before it. */
  allocatedAt?: number;
  /**
   * Epoch ms of the DEL that tore this container down while the pod lived on: the IPs stay the pod's, for the
   * ADD of its next sandbox. Absent while the container holds them.
   */
  detachedAt?: number;
}

/** What a lifecycle knows; carried across continue-as-new and answered by the `state` query. */
export interface LifecycleSnapshot {
  namespace: string;
  pod: string;
  podUID?: string;
  node?: string;
  ownerKind?: string;
  ownerName?: string;
  state: LifecycleState;
  interfaces: Record<string, InterfaceAllocation>;
  /** Every IP this lifecycle has held, for the TidepoolIPs search attribute. */
  ipsEverHeld: string[];
  poolsEverUsed: string[];
  /** Why the lifecycle is in its state, as a person reads it. */
  lastReason?: string;
  /** Why the IPs were last released (a Released or Reclaimed lifecycle); absent in histories written before it. */
  releaseReason?: ReleaseReason;
  /** Epoch ms of the first allocation of the current pod. */
  allocatedAt?: number;
  /** Epoch ms when the pod's IPs are to be judged again (a durable timer). */
  checkAt?: number;
  /** ADDs that failed since the lifecycle last held an IP; absent in histories written before it. */
  failedAttempts?: number;
  /**
   * Epoch ms until which a lifecycle whose ADDs failed waits for the runtime's next ADD; it then ends as a
   * failed workflow. Absent while it holds IPs, and in histories written before it.
   */
  retryUntil?: number;
}

/** From the controller: something happened to the pod; judge its IPs again at `checkAt` (epoch ms). */
export interface PodEvent {
  podUID: string;
  event: 'deleted' | 'terminating' | 'finished' | 'nodeNotReady' | 'statefulSetChanged';
  checkAt: number;
}

/**
 * From the runtime's GC (CNI GC with `cni.dev/valid-attachments`): this attachment of network `network` on
 * `node` is not in the runtime's list of `validAttachments` attachments; release its records unless an ADD
 * gave them after `allocatedBefore` (epoch ms).
 */
export interface RuntimeGcReleaseRequest {
  podUID: string;
  containerID: string;
  interface: string;
  network: string;
  node: string;
  validAttachments: number;
  ips: { ip: string; pool: string }[];
  allocatedBefore: number;
}

/**
 * From a GC sweep (or, for StaleRecord, the controller): these records of this pod UID were judged leaked;
 * reclaim them. Every reason but StaleRecord reclaims all the lifecycle holds for the pod UID too; StaleRecord
 * releases only the named records of the live pod, each after a live look confirms nothing the pod uses names it.
 */
export interface ReclaimRequest {
  podUID: string;
  reason: ReclaimReason;
  ips: { ip: string; pool: string }[];
}

export interface LifecycleInput {
  namespace: string;
  pod: string;
  snapshot?: LifecycleSnapshot;
}

export const allocateUpdate = defineUpdate<AllocateResult, [AllocateRequest]>('allocate');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const runtimeGcReleaseUpdate = defineUpdate<ReleaseResult, [RuntimeGcReleaseRequest]>('runtimeGcRelease');
export const stateQuery = defineQuery<LifecycleSnapshot>('state');
export const podEventSignal = defineSignal<[PodEvent]>('podEvent');
export const reclaimSignal = defineSignal<[ReclaimRequest]>('reclaim');

/** The lifecycle workflow as clients start, update and signal it (`podIPLifecycle` in src/workflows). */
export type PodIPLifecycleWorkflow = (input: LifecycleInput) => Promise<LifecycleSnapshot>;


/** One IP a pod holds: what the pool writer allocated, the lifecycle keeps, the agent answers and the PodEndpoint records. */
export interface PodIP {
  ip: string;
  /** The IP with the subnet's prefix length, e.g. 10.6.0.5/16. */
  address: string;
  version: Family;
  pool: string;
  gateway?: string;
  vlan?: number;
  routes?: Route[];
}

export interface DefaultPools {
  ipv4?: string[];
  ipv6?: string[];
}

export interface AllocateIPsInput {
  namespace: string;
  pod: string;
  podUID: string;
  containerID: string;
  interface: string;
  defaultPools: DefaultPools;
  network?: string;
  /** The node the ADD came from, recorded when the pod's spec names none. */
  node?: string;
  /** Take over the IPs the previous pod of this StatefulSet ordinal (this UID) holds. */
  adoptFromUID?: string;
}

export interface AllocateIPsResult {
  ips: PodIP[];
  node?: string;
  /** Kind and name of the pod's controller, e.g. StatefulSet web. */
  ownerKind?: string;
  ownerName?: string;
  /** Where the pool names came from. */
  source: string;
}

export interface ReleaseIPsInput {
  namespace: string;
  pod: string;
  podUID: string;
  containerID?: string;
  ips: { ip: string; pool: string }[];
  reason: ReleaseReason;
}

export interface ReleaseIPsResult {
  released: string[];
  /** IPs whose record was already gone. */
  notHeld: string[];
  /** IPs now held by another pod, left alone. */
  heldByOther: { ip: string; pod: string }[];
}

export interface ReleaseStaleRecordsInput {
  namespace: string;
  pod: string;
  podUID: string;
  ips: { ip: string; pool: string }[];
}

export interface ReleaseStaleRecordsResult extends ReleaseIPsResult {
  /** IPs that a live look found in use by the pod (its PodEndpoint or status.podIPs name them) or too young to judge. */
  inUse: string[];
}

export interface PodEndpointInput {
  namespace: string;
  pod: string;
  podUID: string;
  node?: string;
  ownerKind?: string;
  ownerName?: string;
  interfaces: Record<string, { containerID: string; ips: PodIP[]; network?: string }>;
  /** The lifecycle wrote the pod's endpoint before (it held IPs): read and replace it, without trying a create first. */
  exists?: boolean;
}

/** A CNI ADD's allocation and its PodEndpoint write, in one local activity. */
export interface AttachInterfaceInput extends AllocateIPsInput {
  /** The lifecycle's other interfaces, which the PodEndpoint lists beside this one. */
  otherInterfaces: PodEndpointInput['interfaces'];
  /** The lifecycle held IPs before this ADD, so the pod's PodEndpoint exists. */
  endpointExists: boolean;
}

/** A CNI DEL's verdict, and the release of the interface's IPs and PodEndpoint entries it may decide, in one local activity. */
export interface DetachInterfaceInput {
  namespace: string;
  pod: string;
  podUID: string;
  containerID: string;
  interface: string;
  ips: { ip: string; pool: string }[];
  ownerKind?: string;
  ownerName?: string;
}

/** Why a CNI DEL keeps the interface's IPs: the pod lives on, or its StatefulSet still wants the pod's ordinal. */
export type DelKeepReason = 'PodLive' | 'StatefulSetOrdinalWanted';

export type DetachInterfaceResult = { action: 'keep'; reason: DelKeepReason } | ({ action: 'release' } & ReleaseIPsResult);

export interface RemoveEndpointInput {
  namespace: string;
  pod: string;
  podUID: string;
  /** Interfaces whose entries to remove (all when absent); the endpoint is deleted once none is left. */
  interfaces?: string[];
}

export interface JudgePodInput {
  namespace: string;
  pod: string;
  podUID: string;
  ownerKind?: string;
  ownerName?: string;
  /** Epoch ms of the lifecycle's first allocation. */
  allocatedAt?: number;
}

export interface StatefulSetOrdinalInput {
  namespace: string;
  pod: string;
  statefulSet: string;
}

