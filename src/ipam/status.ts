import type { AllocationRecord, IPPool, IPPoolStatus } from '../k8s/types.ts';
import { recordOf, type Holder } from './holders.ts';
import { canonicalIP } from './ip.ts';
import { chooseFreeIP, ipSetOf, isTerminating, type PoolAddresses } from './pool.ts';
import type { IPSet } from './ranges.ts';

/** The most records one pool's status holds, to keep the object well under etcd's 1.5 MiB limit. */
export const MAX_RECORDS_PER_POOL = 5000;

export interface AllocationRequest {
  /** `namespace/name` */
  pod: string;
  podUID: string;
  containerID: string;
  interface: string;
  node?: string;
  /** The CNI network the attachment belongs to. */
  network?: string;
  /**
   * A StatefulSet pod re-created under the same name: take over the record that the previous pod (this UID)
   * holds on the same interface, so the pod keeps its IP.
   */
  adoptFromUID?: string;
}

export type AllocationOutcome =
  | { kind: 'allocated'; ip: string }
  /** The pod already holds an IP of this pool on this interface (a repeated ADD, or adoption). */
  | { kind: 'existing'; ip: string }
  | { kind: 'exhausted' }
  | { kind: 'unavailable'; reason: string };

export type ReleaseOutcome =
  | { kind: 'released' }
  /** Nothing to do: no record for this IP. */
  | { kind: 'not-held' }
  /** The IP now belongs to another pod (or container): left alone. */
  | { kind: 'held-by-other'; holder: AllocationRecord };

/** A pool status as one operation left it, and what the operation did. */
export interface StatusChange<O> {
  status: IPPoolStatus;
  outcome: O;
}

export interface StatusOptions {
  /** RFC 3339 time of this write. */
  now: string;
  /** How long a released IP waits before it is handed out again (0: at once). */
  cooldownMs: number;
}

type StatusMaps = Required<Pick<IPPoolStatus, 'allocatedIPs' | 'releasedIPs'>> & Pick<IPPoolStatus, 'reconciledUID'>;

function copyStatus(status: IPPoolStatus | undefined): StatusMaps {
  return {
    allocatedIPs: { ...status?.allocatedIPs },
    releasedIPs: { ...status?.releasedIPs },
    ...(status?.reconciledUID ? { reconciledUID: status.reconciledUID } : {}),
  };
}

function finish(addresses: PoolAddresses, maps: StatusMaps, options: StatusOptions): IPPoolStatus {
  const now = Date.parse(options.now);
  const releasedIPs = Object.fromEntries(
    Object.entries(maps.releasedIPs).filter(
      ([ip, at]) => options.cooldownMs > 0 && now - Date.parse(at) < options.cooldownMs && !(ip in maps.allocatedIPs),
    ),
  );
  return {
    ...(maps.reconciledUID ? { reconciledUID: maps.reconciledUID } : {}),
    allocatedIPs: maps.allocatedIPs,
    ...(Object.keys(releasedIPs).length > 0 ? { releasedIPs } : {}),
    ...statusCounts(addresses, maps.allocatedIPs),
  };
}

/** The counts `kubectl get ippools` shows: records, and allocatable IPs (capped at the largest safe integer). */
export function statusCounts(addresses: PoolAddresses, allocatedIPs: Record<string, unknown>): Required<Pick<IPPoolStatus, 'allocatedIPCount' | 'totalIPCount'>> {
  const total = addresses.allocatable.size();
  return {
    allocatedIPCount: Object.keys(allocatedIPs).length,
    totalIPCount: total > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(total),
  };
}

/**
 * Allocates one IP of `pool` for `request`, on a copy of the pool's status. Idempotent per (pod UID,
 * interface): a pod that already holds an IP of this pool on that interface gets the same IP back.
 */
export function allocateInStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  reserved: IPSet,
  request: AllocationRequest,
  options: StatusOptions,
): StatusChange<AllocationOutcome> {
  const maps = copyStatus(pool.status);
  const records = maps.allocatedIPs;
  const same = (record: AllocationRecord, uid: string) =>
    record.podUID === uid && record.pod === request.pod && (record.interface ?? '') === request.interface;

  for (const uid of [request.podUID, request.adoptFromUID]) {
    if (uid === undefined) continue;
    const held = Object.entries(records).find(([, record]) => same(record, uid));
    if (held) {
      const [ip, record] = held;
      records[ip] = {
        ...record,
        podUID: request.podUID,
        containerID: request.containerID,
        node: request.node ?? record.node,
        ...(request.network ?? record.network ? { network: request.network ?? record.network } : {}),
      };
      return { status: finish(addresses, maps, options), outcome: { kind: 'existing', ip } };
    }
  }

  if (isTerminating(pool)) return { status: pool.status ?? {}, outcome: { kind: 'unavailable', reason: 'it is being deleted' } };
  if (pool.spec.disable) return { status: pool.status ?? {}, outcome: { kind: 'unavailable', reason: 'it is disabled' } };
  if (Object.keys(records).length >= MAX_RECORDS_PER_POOL) {
    return { status: pool.status ?? {}, outcome: { kind: 'unavailable', reason: `it holds the maximum of ${MAX_RECORDS_PER_POOL} records` } };
  }

  const now = Date.parse(options.now);
  const cooling = Object.entries(maps.releasedIPs)
    .filter(([, at]) => options.cooldownMs > 0 && now - Date.parse(at) < options.cooldownMs)
    .map(([ip]) => ip);
  const taken = ipSetOf(addresses.family, [...Object.keys(records), ...cooling]);
  const ip = chooseFreeIP(addresses, reserved, taken);
  if (ip === undefined) return { status: pool.status ?? {}, outcome: { kind: 'exhausted' } };
  records[ip] = {
    pod: request.pod,
    podUID: request.podUID,
    containerID: request.containerID,
    interface: request.interface,
    ...(request.node ? { node: request.node } : {}),
    ...(request.network ? { network: request.network } : {}),
    allocatedAt: options.now,
  };
  return { status: finish(addresses, maps, options), outcome: { kind: 'allocated', ip } };
}

/**
 * Compare-and-delete: removes the record of `ip` only while it still names `podUID` (and `containerID`,
 * when given), so an IP already handed to another pod is never released by a late or repeated release.
 */
export function releaseInStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  release: { ip: string; podUID: string; containerID?: string },
  options: StatusOptions,
): StatusChange<ReleaseOutcome> {
  const maps = copyStatus(pool.status);
  const ip = canonicalIP(release.ip);
  const record = maps.allocatedIPs[ip];
  if (!record) return { status: finish(addresses, maps, options), outcome: { kind: 'not-held' } };
  if (record.podUID !== release.podUID || (release.containerID && record.containerID && record.containerID !== release.containerID)) {
    return { status: finish(addresses, maps, options), outcome: { kind: 'held-by-other', holder: record } };
  }
  delete maps.allocatedIPs[ip];
  if (options.cooldownMs > 0) maps.releasedIPs[ip] = options.now;
  return { status: finish(addresses, maps, options), outcome: { kind: 'released' } };
}

/** Whether the pool's records were rebuilt from the live holders since this pool object (its UID) appeared. */
export function needsReconciliation(pool: IPPool): boolean {
  return pool.status?.reconciledUID !== pool.metadata.uid;
}

/** Adds a record for each holder whose IP no record names; returns the holders it recorded. */
function addRecords(maps: StatusMaps, holders: readonly Holder[], now: string): Holder[] {
  const recorded: Holder[] = [];
  for (const holder of holders) {
    if (maps.allocatedIPs[holder.ip]) continue;
    maps.allocatedIPs[holder.ip] = recordOf(holder, now);
    delete maps.releasedIPs[holder.ip];
    recorded.push(holder);
  }
  return recorded;
}

/**
 * Rebuilds a pool's records from the live holders of its IPs (see holders.ts) and marks the status as
 * reconciled for this pool object's UID. Only IPs that no record names are recorded; an existing record is
 * never changed, so a conflict stays visible to the sweep. Returns the holders it recorded.
 */
export function reconcileStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  unrecorded: readonly Holder[],
  options: StatusOptions,
): { status: IPPoolStatus; recorded: Holder[] } {
  const maps = copyStatus(pool.status);
  const recorded = addRecords(maps, unrecorded, options.now);
  if (pool.metadata.uid) maps.reconciledUID = pool.metadata.uid;
  return { status: finish(addresses, maps, options), recorded };
}

export type RecordOutcome =
  | { kind: 'recorded' }
  /** Another record names the IP by now: left alone (the sweep reports a conflict if both pods live). */
  | { kind: 'held'; holder: AllocationRecord };

/** Records one live holder's IP that the pool had lost, unless a record names the IP by now. */
export function recordInStatus(pool: IPPool, addresses: PoolAddresses, holder: Holder, options: StatusOptions): StatusChange<RecordOutcome> {
  const maps = copyStatus(pool.status);
  const existing = maps.allocatedIPs[holder.ip];
  if (existing) return { status: finish(addresses, maps, options), outcome: { kind: 'held', holder: existing } };
  addRecords(maps, [holder], options.now);
  return { status: finish(addresses, maps, options), outcome: { kind: 'recorded' } };
}
