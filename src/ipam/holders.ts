import type { AllocationRecord, IPPool, PodEndpoint } from '../k8s/types.ts';
import { canonicalIP, parseIP } from './ip.ts';
import type { PoolAddresses } from './pool.ts';

/**
 * The records of use that a pool's status is not: a pod's PodEndpoint (every interface, with its pool) and a
 * live pod's `status.podIPs` (the cluster network's IPs, which kubelet attaches as eth0). A pool that lost its
 * status (deleted with its finalizer removed, then created again, or restored from a backup) is rebuilt from
 * these before it serves anyone, and the sweep compares them with the records every time.
 */

/** What the holders need to know about a pod. */
export interface LivePod {
  /** `namespace/name` */
  pod: string;
  uid: string;
  node?: string;
  podIPs: readonly string[];
  terminating: boolean;
  /** Succeeded or Failed: its containers are gone, so it holds no IP any more. */
  finished: boolean;
  /**
   * Its Ready condition is True. Only a ready pod's `status.podIPs` count as a claim: a pod whose sandbox died
   * (a node that lost power, a runtime that restarts it) keeps listing the old IP, which its DEL gives back,
   * until kubelet writes the new sandbox's status.
   */
  ready: boolean;
}

/** A live pod's claim on one IP. */
export interface Holder {
  ip: string;
  /** `namespace/name` */
  pod: string;
  podUID: string;
  interface: string;
  containerID?: string;
  node?: string;
  /** The CNI network of the attachment, as its PodEndpoint entry names it. */
  network?: string;
  terminating: boolean;
  /** The pool a PodEndpoint names; a claim from `status.podIPs` names none and counts for the pool whose ranges hold the IP. */
  pool?: string;
  source: 'PodEndpoint' | 'podIPs';
}

/** The interface kubelet gives the cluster network, whose IPs `status.podIPs` lists. */
export const POD_IPS_INTERFACE = 'eth0';

function canonicalOrUndefined(ip: string): string | undefined {
  try {
    return canonicalIP(ip);
  } catch {
    return undefined;
  }
}

/**
 * Every claim that a live (not finished) pod makes on an IP: each interface of its PodEndpoint (when the
 * endpoint is the pod's own, by UID), then each `status.podIPs` of a ready pod that the endpoint does not name.
 */
export function liveHolders(endpoints: readonly PodEndpoint[], pods: readonly LivePod[]): Holder[] {
  const byName = new Map(pods.filter((pod) => !pod.finished).map((pod) => [pod.pod, pod]));
  const holders: Holder[] = [];
  const named = new Set<string>();
  for (const endpoint of endpoints) {
    const pod = byName.get(`${endpoint.metadata.namespace}/${endpoint.metadata.name}`);
    if (!pod || pod.uid !== endpoint.status.podUID) continue;
    for (const entry of endpoint.status.ips) {
      const ip = canonicalOrUndefined(entry.address.split('/')[0] ?? '');
      if (!ip) continue;
      named.add(`${pod.uid}/${ip}`);
      const node = endpoint.status.node ?? pod.node;
      holders.push({
        ip,
        pod: pod.pod,
        podUID: pod.uid,
        interface: entry.interface,
        ...(entry.containerID ? { containerID: entry.containerID } : {}),
        ...(entry.network ? { network: entry.network } : {}),
        ...(node ? { node } : {}),
        terminating: pod.terminating,
        pool: entry.pool,
        source: 'PodEndpoint',
      });
    }
  }
  for (const pod of byName.values()) {
    if (!pod.ready) continue;
    for (const raw of pod.podIPs) {
      const ip = canonicalOrUndefined(raw);
      if (!ip || named.has(`${pod.uid}/${ip}`)) continue;
      holders.push({
        ip,
        pod: pod.pod,
        podUID: pod.uid,
        interface: POD_IPS_INTERFACE,
        ...(pod.node ? { node: pod.node } : {}),
        terminating: pod.terminating,
        source: 'podIPs',
      });
    }
  }
  return holders;
}

/** Two or more live pods that hold one IP, by records, PodEndpoints or `status.podIPs`. */
export interface IPConflict {
  ip: string;
  pool: string;
  /** `namespace/name (uid)` of each, the pool's record first when it has one. */
  holders: { pod: string; podUID: string }[];
}

/** How a pool's records compare with its live holders. */
export interface PoolHoldings {
  /** Held by a live pod with no record in the pool: the first holder of each such IP. */
  unrecorded: Holder[];
  conflicts: IPConflict[];
}

/** Whether `holder` claims an IP of this pool: by the pool its PodEndpoint names, or by the pool's ranges. */
function claimsPool(holder: Holder, pool: string, addresses: PoolAddresses): boolean {
  if (holder.pool !== undefined) return holder.pool === pool;
  const parsed = parseIP(holder.ip);
  return parsed.family === addresses.family && addresses.allocatable.has(parsed.value);
}

/**
 * Compares one pool's records with the live holders. `liveUIDs` are the UIDs of the live pods, so that a record
 * of a pod that is gone does not count as a second holder (the sweep reclaims such a record on its own).
 */
export function poolHoldings(
  pool: Pick<IPPool, 'metadata' | 'status'>,
  addresses: PoolAddresses,
  holders: readonly Holder[],
  liveUIDs: ReadonlySet<string>,
): PoolHoldings {
  const name = pool.metadata.name;
  const records = pool.status?.allocatedIPs ?? {};
  const byIP = new Map<string, Holder[]>();
  for (const holder of holders) {
    if (!claimsPool(holder, name, addresses)) continue;
    const list = byIP.get(holder.ip) ?? [];
    if (!list.some((h) => h.podUID === holder.podUID)) list.push(holder);
    byIP.set(holder.ip, list);
  }
  const unrecorded: Holder[] = [];
  const conflicts: IPConflict[] = [];
  for (const [ip, claims] of byIP) {
    const record: AllocationRecord | undefined = records[ip];
    const others = record ? claims.filter((h) => h.podUID !== record.podUID) : claims.slice(1);
    const recordHolder = record && liveUIDs.has(record.podUID) ? [{ pod: record.pod, podUID: record.podUID }] : [];
    const first = record ? recordHolder : claims.slice(0, 1).map((h) => ({ pod: h.pod, podUID: h.podUID }));
    if (first.length > 0 && others.length > 0) {
      conflicts.push({ ip, pool: name, holders: [...first, ...others.map((h) => ({ pod: h.pod, podUID: h.podUID }))] });
    }
    if (!record) unrecorded.push(preferEndpoint(claims));
  }
  return { unrecorded, conflicts };
}

/** The holder to record an IP for: the pod whose PodEndpoint names it, since a PodEndpoint carries its interface and container. */
function preferEndpoint(claims: readonly Holder[]): Holder {
  return claims.find((h) => h.source === 'PodEndpoint') ?? claims[0]!;
}

/** The pool record that re-records a holder's IP. */
export function recordOf(holder: Holder, now: string): AllocationRecord {
  return {
    pod: holder.pod,
    podUID: holder.podUID,
    ...(holder.containerID ? { containerID: holder.containerID } : {}),
    interface: holder.interface,
    ...(holder.node ? { node: holder.node } : {}),
    ...(holder.network ? { network: holder.network } : {}),
    allocatedAt: now,
  };
}
