import { setTimeout as sleep } from 'node:timers/promises';
import { PoolNotFoundError, type PoolStore } from '../ipam/allocator.ts';
import type { TidepoolClient } from '../k8s/client.ts';
import { KubeApiError } from '../k8s/errors.ts';
import type { IPPool, IPPoolStatus } from '../k8s/types.ts';
import { poolAddresses, type PoolAddresses } from '../ipam/pool.ts';
import { poolHoldings, type Holder, type IPConflict } from '../ipam/holders.ts';
import type { IPSet } from '../ipam/ranges.ts';
import {
  applyToStatus,
  needsReconciliation,
  reconcileStatus,
  type AllocationOutcome,
  type AllocationRequest,
  type OutcomeOf,
  type RecordOutcome,
  type ReleaseOutcome,
  type StatusOperation,
  type StatusOptions,
  type StatusOutcome,
} from '../ipam/status.ts';
import type { HolderSource } from './holders.ts';

interface Pending {
  operation: StatusOperation;
  resolve: (outcome: StatusOutcome) => void;
  reject: (error: Error) => void;
}

export interface PoolWriterOptions {
  client: TidepoolClient;
  /** Read once for each pool object that has not been reconciled yet (see `reconcileStatus`). */
  holders: HolderSource;
  /** The pools as a watch cache holds them. */
  cache: { pools(): readonly IPPool[]; pool(name: string): IPPool | undefined };
  cooldownMs: number;
  /**
   * After each status write of a pool, the next one waits this many times as long as that write took. A write
   * costs the API server (and every watcher) in proportion to the pool's records, and takes longer the busier
   * the API server is; requests that arrive meanwhile join the next write, so a large or busy pool's writes
   * carry more of them, while a small idle pool's wait stays a few milliseconds. 0: write back to back.
   */
  writeSpacing?: number;
  /** Attempts per batch before the batch fails (each 409 re-reads the pool). */
  maxAttempts?: number;
  now?: () => Date;
  /** Told of every committed batch, for metrics and logs. */
  onBatch?: (report: BatchReport) => void;
}

export interface PoolWriterStats {
  operations: number;
  writes: number;
  conflicts: number;
}

/** What one committed batch did, for metrics and logs. */
export interface BatchReport {
  pool: string;
  operations: number;
  conflicts: number;
  /** Present when this write reconciled a pool object that had just appeared. */
  reconciliation?: Reconciliation;
}

/** A pool object's first write: the live holders it re-recorded, and the IPs two live pods hold. */
export interface Reconciliation {
  poolUID: string;
  recorded: Holder[];
  conflicts: IPConflict[];
}

/**
 * The allocator's PoolStore on the API server. Serialises all writes to one pool's status within this process
 * and batches them: requests that arrive while a write is in flight are applied together and committed in the
 * next single status write. Each write carries the resourceVersion of the pool it was computed from; on 409
 * the pool is read again and the whole batch is re-applied, so concurrent writers (other replicas, users)
 * never lose an update. Before a pool object that appeared serves anyone, its status is rebuilt from the IPs
 * live pods still hold, in the same write.
 */
export class PoolWriter implements PoolStore {
  readonly stats: PoolWriterStats = { operations: 0, writes: 0, conflicts: 0 };
  private readonly queues = new Map<string, Pending[]>();
  /** The pool as this process last wrote it: a write based on it fails with 409 if anyone changed it since. */
  private readonly lastWritten = new Map<string, IPPool>();
  /** When each pool's next status write may start (performance.now()). */
  private readonly nextWriteAt = new Map<string, number>();
  private readonly options: Required<PoolWriterOptions>;

  constructor(options: PoolWriterOptions) {
    this.options = { maxAttempts: 20, writeSpacing: 0, now: () => new Date(), onBatch: () => {}, ...options };
  }

  private statusOptions(): StatusOptions {
    return { now: this.options.now().toISOString(), cooldownMs: this.options.cooldownMs };
  }

  async pools(fresh: boolean): Promise<readonly IPPool[]> {
    return fresh ? (await this.options.client.listPools()).items : this.options.cache.pools();
  }

  allocate(pool: string, request: AllocationRequest, reserved: IPSet): Promise<AllocationOutcome> {
    return this.submit(pool, { kind: 'allocate', request, reserved });
  }

  release(pool: string, ip: string, podUID: string, containerID?: string): Promise<ReleaseOutcome> {
    return this.submit(pool, { kind: 'release', ip, podUID, ...(containerID ? { containerID } : {}) });
  }

  /** Records an IP that a live pod holds and the pool lost, unless a record names it by now. */
  record(pool: string, holder: Holder): Promise<RecordOutcome> {
    return this.submit(pool, { kind: 'record', holder });
  }

  private submit<O extends StatusOperation>(pool: string, operation: O): Promise<OutcomeOf<O>> {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(pool);
      const pending = { operation, resolve: resolve as Pending['resolve'], reject };
      if (queue) {
        queue.push(pending);
      } else {
        this.queues.set(pool, [pending]);
        void this.drain(pool);
      }
    });
  }

  private async drain(pool: string): Promise<void> {
    // The queue entry exists while a drain loop runs; requests arriving meanwhile join the next batch.
    const queue = this.queues.get(pool)!;
    while (queue.length > 0) {
      const wait = (this.nextWriteAt.get(pool) ?? 0) - performance.now();
      if (wait > 0) await sleep(wait);
      const batch = queue.splice(0);
      try {
        await this.commit(pool, batch);
      } catch (error) {
        for (const pending of batch) pending.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    this.queues.delete(pool);
  }

  private async read(pool: string): Promise<IPPool> {
    const fresh = await this.options.client.getPool(pool);
    if (!fresh) throw new PoolNotFoundError(pool);
    return fresh;
  }

  /**
   * The newest copy of the pool this process has: its own last write, or the watch cache's when that is newer
   * (another replica wrote since), so that writers on two replicas take turns instead of failing each other.
   */
  private base(pool: string): IPPool | undefined {
    const written = this.lastWritten.get(pool);
    const watched = this.options.cache.pool(pool);
    if (!written || !watched) return written;
    return resourceVersionNewer(watched, written) ? watched : written;
  }

  private async commit(pool: string, batch: Pending[]): Promise<void> {
    let current = this.base(pool) ?? (await this.read(pool));
    let conflicts = 0;
    let holders: Awaited<ReturnType<HolderSource['read']>> | undefined;
    for (let attempt = 1; ; attempt++) {
      const addresses = poolAddresses(pool, current.spec);
      let reconciliation: Reconciliation | undefined;
      let base = current;
      if (needsReconciliation(current)) {
        holders ??= await this.options.holders.read();
        const holdings = poolHoldings(current, addresses, holders.holders, holders.liveUIDs);
        const { status, recorded } = reconcileStatus(current, addresses, holdings.unrecorded, this.statusOptions());
        base = { ...current, status };
        reconciliation = { poolUID: current.metadata.uid ?? '', recorded, conflicts: holdings.conflicts };
      }
      const { status, outcomes } = this.apply(base, addresses, batch);
      try {
        if (JSON.stringify(status) !== JSON.stringify(current.status ?? {})) {
          const started = performance.now();
          current = await this.options.client.replacePoolStatus({ ...current, status });
          const finished = performance.now();
          this.nextWriteAt.set(pool, finished + (finished - started) * this.options.writeSpacing);
          this.stats.writes++;
        }
        this.lastWritten.set(pool, current);
        this.stats.operations += batch.length;
        batch.forEach((pending, i) => pending.resolve(outcomes[i]!));
        this.options.onBatch({ pool, operations: batch.length, conflicts, ...(reconciliation ? { reconciliation } : {}) });
        return;
      } catch (error) {
        this.lastWritten.delete(pool);
        if (!(error instanceof KubeApiError && error.conflict) || attempt >= this.options.maxAttempts) throw error;
        conflicts++;
        this.stats.conflicts++;
        await sleep(Math.min(5 * 2 ** attempt, 200) * Math.random());
        current = await this.read(pool);
      }
    }
  }

  private apply(pool: IPPool, addresses: PoolAddresses, batch: Pending[]): { status: IPPoolStatus; outcomes: StatusOutcome[] } {
    return applyToStatus(pool, addresses, batch.map((pending) => pending.operation), this.statusOptions());
  }
}

/**
 * Whether `a` is a later version of the same object than `b`. resourceVersions are opaque to clients; the API
 * server on etcd gives integers that grow, and anything else counts as not newer (the write's 409 then tells).
 */
function resourceVersionNewer(a: IPPool, b: IPPool): boolean {
  const [left, right] = [a.metadata.resourceVersion ?? '', b.metadata.resourceVersion ?? ''];
  return a.metadata.uid === b.metadata.uid && /^\d+$/.test(left) && /^\d+$/.test(right) && BigInt(left) > BigInt(right);
}
