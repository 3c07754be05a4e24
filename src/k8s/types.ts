import type { V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';
import type { Family, Route } from '../contract/lifecycle.ts';

export const GROUP = 'tidepool.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const IP_PROTECTION_FINALIZER = 'tidepool.dev/ip-protection';


export interface IPPoolSpec {
  ipVersion?: Family;
  subnet: string;
  /** Single IPs and `first-last` ranges. */
  ips: string[];
  excludeIPs?: string[];
  gateway?: string;
  vlan?: number;
  /** Extra routes; the default route via `gateway` is `defaultRoute`'s. */
  routes?: Route[];
  /** Whether an interface of this pool gets a default route via `gateway` (true when absent and a gateway is set). */
  defaultRoute?: boolean;
  default?: boolean;
  disable?: boolean;
  nodeName?: string[];
  namespaceName?: string[];
  nodeAffinity?: V1LabelSelector;
  namespaceAffinity?: V1LabelSelector;
  podAffinity?: V1LabelSelector;
}

/** One allocated IP in a pool's status. */
export interface AllocationRecord {
  /** `namespace/name` */
  pod: string;
  podUID: string;
  containerID?: string;
  interface?: string;
  /** The node the pod runs on. */
  node?: string;
  /** The CNI network (the configuration's `name`) the attachment belongs to; absent in records written before it. */
  network?: string;
  /** RFC 3339 */
  allocatedAt?: string;
}

export interface IPPoolStatus {
  /**
   * The UID of the pool object whose records were rebuilt from the live holders (PodEndpoints, pods'
   * status.podIPs). A pool whose UID differs (just created, re-created, restored) is reconciled before it
   * serves an allocation.
   */
  reconciledUID?: string;
  /** Keyed by IP. */
  allocatedIPs?: Record<string, AllocationRecord>;
  /** IPs released within the reuse cooldown, keyed by IP, with the RFC 3339 time of release. */
  releasedIPs?: Record<string, string>;
  allocatedIPCount?: number;
  totalIPCount?: number;
}

export interface IPPool {
  apiVersion: typeof API_VERSION;
  kind: 'IPPool';
  metadata: V1ObjectMeta & { name: string };
  spec: IPPoolSpec;
  status?: IPPoolStatus;
}

export interface ReservedIPSpec {
  ipVersion?: Family;
  ips: string[];
}

export interface HeldReservedIP {
  ip: string;
  pool: string;
  pod: string;
  podUID?: string;
}

export interface ReservedIP {
  apiVersion: typeof API_VERSION;
  kind: 'ReservedIP';
  metadata: V1ObjectMeta & { name: string };
  spec: ReservedIPSpec;
  status?: { heldIPs?: HeldReservedIP[] };
}

export interface EndpointIP {
  interface: string;
  /** The IP with its subnet's prefix length, e.g. `10.6.0.5/16`. */
  address: string;
  pool: string;
  ipVersion?: Family;
  gateway?: string;
  vlan?: number;
  containerID?: string;
  /** The CNI network of the attachment. */
  network?: string;
}

export interface PodEndpointStatus {
  podUID: string;
  node?: string;
  ownerKind?: string;
  ownerName?: string;
  ips: EndpointIP[];
}

export interface PodEndpoint {
  apiVersion: typeof API_VERSION;
  kind: 'PodEndpoint';
  metadata: V1ObjectMeta & { name: string; namespace: string };
  status: PodEndpointStatus;
}
