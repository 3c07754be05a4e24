import type { Route } from '../k8s/types.ts';
import type { Family } from '../ipam/ip.ts';

/** One IP a pod holds, as the CNI result and the PodEndpoint carry it. */
export interface HeldIP {
  ip: string;
  /** The IP with the subnet's prefix length, e.g. 10.6.0.5/16. */
  address: string;
  version: Family;
  pool: string;
  gateway?: string;
  vlan?: number;
  routes?: Route[];
}

export interface PoolDefaults {
  ipv4?: string[];
  ipv6?: string[];
}

export interface AllocateIPsInput {
  namespace: string;
  pod: string;
  podUID: string;
  containerID: string;
  interface: string;
  netconfDefaults: PoolDefaults;
  /** Take over the IPs the previous pod of this StatefulSet ordinal (this UID) holds. */
  adoptFromUID?: string;
}

export interface AllocateIPsResult {
  ips: HeldIP[];
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
  reason: string;
}

export interface ReleaseIPsResult {
  released: string[];
  /** IPs whose record was already gone. */
  notHeld: string[];
  /** IPs now held by another pod, left alone. */
  heldByOther: { ip: string; pod: string }[];
}

export interface PodEndpointInput {
  namespace: string;
  pod: string;
  podUID: string;
  node?: string;
  ownerKind?: string;
  ownerName?: string;
  interfaces: Record<string, { containerID: string; ips: HeldIP[] }>;
}

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

/** Error types that activities throw as non-retryable ApplicationFailures, and the agent maps to CNI codes. */
export const FailureType = {
  NoFreeIP: 'NoFreeIP',
  PoolSelection: 'PoolSelection',
  PodNotFound: 'PodNotFound',
  PodUIDMismatch: 'PodUIDMismatch',
  InvalidPool: 'InvalidPool',
} as const;
