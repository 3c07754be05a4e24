import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { HeldIP, PoolDefaults } from '../activities/types.ts';

/** A CNI ADD for one interface of one pod. */
export interface AllocateRequest {
  podUID: string;
  containerID: string;
  interface: string;
  netconfDefaults: PoolDefaults;
}

export interface AllocateResult {
  ips: HeldIP[];
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
  ips: HeldIP[];
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
  lastReason?: string;
  /** Epoch ms of the first allocation of the current pod. */
  allocatedAt?: number;
  /** Epoch ms when the pod's IPs are to be judged again (a durable timer). */
  checkAt?: number;
}

/** From the controller: something happened to the pod; judge its IPs again at `checkAt` (epoch ms). */
export interface PodEvent {
  podUID: string;
  event: 'deleted' | 'terminating' | 'finished' | 'nodeNotReady';
  checkAt: number;
}

/** From a GC sweep: these records of this pod UID were judged leaked; reclaim them. */
export interface ReclaimRequest {
  podUID: string;
  reason: string;
  ips: { ip: string; pool: string }[];
}

export interface LifecycleInput {
  namespace: string;
  pod: string;
  snapshot?: LifecycleSnapshot;
}

export const allocateUpdate = defineUpdate<AllocateResult, [AllocateRequest]>('allocate');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const stateQuery = defineQuery<LifecycleSnapshot>('state');
export const podEventSignal = defineSignal<[PodEvent]>('podEvent');
export const reclaimSignal = defineSignal<[ReclaimRequest]>('reclaim');

/** The terminating pool's status changed (an IP was released): the pool-deletion workflow looks again now. */
export const poolReleasedSignal = defineSignal('released');
