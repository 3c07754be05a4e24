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

/** One change of a pool's records, as the pool writer batches them. */
export type StatusOperation =
  | { kind: 'allocate'; request: AllocationRequest; reserved: IPSet }
  | { kind: 'release'; ip: string; podUID: string; containerID?: string }
  | { kind: 'record'; holder: Holder };

export type StatusOutcome = AllocationOutcome | ReleaseOutcome | RecordOutcome;
export type OutcomeOf<O extends StatusOperation> = O extends { kind: 'allocate' }
  ? AllocationOutcome
  : O extends { kind: 'release' }
    ? ReleaseOutcome
    : RecordOutcome;

const holderKey = (podUID: string, pod: string, iface: string | undefined) => `${podUID}\u0000${pod}\u0000${iface ?? ''}`;

/**
 * A batch of operations on one copy of a pool's records. The lookups an allocation needs (the record a pod
 * holds, the addresses taken) are built once per batch and kept up to date, so a batch of k operations on a
 * pool of n records costs O(n + k) rather than k copies and scans of the n records.
 */
class StatusBatch {
  private readonly maps: StatusMaps;
  private readonly pool: IPPool;
  private readonly addresses: PoolAddresses;
  private readonly options: StatusOptions;
  /** The IPs each (pod UID, pod, interface) holds; a lost record re-recorded can make it more than one. */
  private byHolder: Map<string, Set<string>> | undefined;
  /** Each record's place in the records' order, which picks among one holder's IPs as a scan of them would. */
  private readonly order = new Map<string, number>();
  private nextOrder = 0;
  /** Recorded IPs and those still cooling down after their release. */
  private taken: IPSet | undefined;
  private records: number;

  constructor(pool: IPPool, addresses: PoolAddresses, options: StatusOptions) {
    this.pool = pool;
    this.addresses = addresses;
    this.options = options;
    this.maps = copyStatus(pool.status);
    this.records = Object.keys(this.maps.allocatedIPs).length;
  }

  private holders(): Map<string, Set<string>> {
    if (this.byHolder === undefined) {
      this.byHolder = new Map();
      for (const [ip, record] of Object.entries(this.maps.allocatedIPs)) this.index(ip, record);
    }
    return this.byHolder;
  }

  private index(ip: string, record: AllocationRecord): void {
    if (!this.order.has(ip)) this.order.set(ip, this.nextOrder++);
    const key = holderKey(record.podUID, record.pod, record.interface);
    const ips = this.byHolder!.get(key);
    if (ips) ips.add(ip);
    else this.byHolder!.set(key, new Set([ip]));
  }

  private unindex(ip: string, record: AllocationRecord): void {
    const key = holderKey(record.podUID, record.pod, record.interface);
    const ips = this.byHolder?.get(key);
    ips?.delete(ip);
    if (ips?.size === 0) this.byHolder!.delete(key);
  }

  /** The first IP in the records' order that `uid` holds for the request's pod and interface. */
  private heldBy(uid: string, request: AllocationRequest): string | undefined {
    const ips = this.holders().get(holderKey(uid, request.pod, request.interface));
    if (!ips) return undefined;
    let first: string | undefined;
    for (const ip of ips) if (first === undefined || this.order.get(ip)! < this.order.get(first)!) first = ip;
    return first;
  }

  private takenIPs(): IPSet {
    if (this.taken === undefined) {
      const now = Date.parse(this.options.now);
      const cooling = Object.entries(this.maps.releasedIPs)
        .filter(([, at]) => this.options.cooldownMs > 0 && now - Date.parse(at) < this.options.cooldownMs)
        .map(([ip]) => ip);
      this.taken = ipSetOf(this.addresses.family, [...Object.keys(this.maps.allocatedIPs), ...cooling]);
    }
    return this.taken;
  }

  private addRecord(ip: string, record: AllocationRecord): void {
    this.maps.allocatedIPs[ip] = record;
    this.records++;
    if (this.byHolder) this.index(ip, record);
    if (this.taken) this.taken = this.taken.union(ipSetOf(this.addresses.family, [ip]));
  }

  private removeRecord(ip: string, record: AllocationRecord): void {
    delete this.maps.allocatedIPs[ip];
    this.records--;
    this.unindex(ip, record);
    this.order.delete(ip);
    // A cooling IP stays taken until its cooldown ends.
    if (this.taken && this.options.cooldownMs <= 0) this.taken = this.taken.subtract(ipSetOf(this.addresses.family, [ip]));
  }

  apply<O extends StatusOperation>(operation: O): OutcomeOf<O> {
    switch (operation.kind) {
      case 'allocate':
        return this.allocate(operation.request, operation.reserved) as OutcomeOf<O>;
      case 'release':
        return this.release(operation) as OutcomeOf<O>;
      default:
        return this.record(operation.holder) as OutcomeOf<O>;
    }
  }

  /** Idempotent per (pod UID, interface): a pod that holds an IP of this pool on that interface gets it back. */
  private allocate(request: AllocationRequest, reserved: IPSet): AllocationOutcome {
    const records = this.maps.allocatedIPs;
    for (const uid of [request.podUID, request.adoptFromUID]) {
      if (uid === undefined) continue;
      const ip = this.heldBy(uid, request);
      if (ip === undefined) continue;
      const record = records[ip]!;
      const rewritten = {
        ...record,
        podUID: request.podUID,
        containerID: request.containerID,
        node: request.node ?? record.node,
        ...(request.network ?? record.network ? { network: request.network ?? record.network } : {}),
      };
      // In place: the record keeps its place in the order.
      records[ip] = rewritten;
      this.unindex(ip, record);
      this.index(ip, rewritten);
      return { kind: 'existing', ip };
    }
    if (isTerminating(this.pool)) return { kind: 'unavailable', reason: 'it is being deleted' };
    if (this.pool.spec.disable) return { kind: 'unavailable', reason: 'it is disabled' };
    if (this.records >= MAX_RECORDS_PER_POOL) {
      return { kind: 'unavailable', reason: `it holds the maximum of ${MAX_RECORDS_PER_POOL} records` };
    }
    const ip = chooseFreeIP(this.addresses, reserved, this.takenIPs());
    if (ip === undefined) return { kind: 'exhausted' };
    delete this.maps.releasedIPs[ip];
    this.addRecord(ip, {
      pod: request.pod,
      podUID: request.podUID,
      containerID: request.containerID,
      interface: request.interface,
      ...(request.node ? { node: request.node } : {}),
      ...(request.network ? { network: request.network } : {}),
      allocatedAt: this.options.now,
    });
    return { kind: 'allocated', ip };
  }

  /**
   * Compare-and-delete: removes the record of `ip` only while it still names `podUID` (and `containerID`,
   * when given), so an IP already handed to another pod is never released by a late or repeated release.
   */
  private release(release: { ip: string; podUID: string; containerID?: string }): ReleaseOutcome {
    const ip = canonicalIP(release.ip);
    const record = this.maps.allocatedIPs[ip];
    if (!record) return { kind: 'not-held' };
    if (record.podUID !== release.podUID || (release.containerID && record.containerID && record.containerID !== release.containerID)) {
      return { kind: 'held-by-other', holder: record };
    }
    this.removeRecord(ip, record);
    if (this.options.cooldownMs > 0) this.maps.releasedIPs[ip] = this.options.now;
    return { kind: 'released' };
  }

  /** Records one live holder's IP that the pool had lost, unless a record names the IP by now. */
  private record(holder: Holder): RecordOutcome {
    const existing = this.maps.allocatedIPs[holder.ip];
    if (existing) return { kind: 'held', holder: existing };
    delete this.maps.releasedIPs[holder.ip];
    this.addRecord(holder.ip, recordOf(holder, this.options.now));
    return { kind: 'recorded' };
  }

  finish(): IPPoolStatus {
    return finish(this.addresses, this.maps, this.options);
  }
}

/** Applies `operations` in order to a copy of the pool's status: the status they leave, and each one's outcome. */
export function applyToStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  operations: readonly StatusOperation[],
  options: StatusOptions,
): { status: IPPoolStatus; outcomes: StatusOutcome[] } {
  const batch = new StatusBatch(pool, addresses, options);
  const outcomes = operations.map((operation) => batch.apply(operation));
  return { status: batch.finish(), outcomes };
}

function applyOne<O extends StatusOperation>(pool: IPPool, addresses: PoolAddresses, operation: O, options: StatusOptions): StatusChange<OutcomeOf<O>> {
  const batch = new StatusBatch(pool, addresses, options);
  const outcome = batch.apply(operation);
  return { status: batch.finish(), outcome };
}

/** Allocates one IP of `pool` for `request`, on a copy of the pool's status (see StatusBatch). */
export function allocateInStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  reserved: IPSet,
  request: AllocationRequest,
  options: StatusOptions,
): StatusChange<AllocationOutcome> {
  return applyOne(pool, addresses, { kind: 'allocate', request, reserved }, options);
}

/** Compare-and-delete of one record, on a copy of the pool's status (see StatusBatch). */
export function releaseInStatus(
  pool: IPPool,
  addresses: PoolAddresses,
  release: { ip: string; podUID: string; containerID?: string },
  options: StatusOptions,
): StatusChange<ReleaseOutcome> {
  return applyOne(pool, addresses, { kind: 'release', ...release }, options);
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
  return applyOne(pool, addresses, { kind: 'record', holder }, options);
}
