import type { Family } from '../contract/lifecycle.ts';
import type { IPPool } from '../k8s/types.ts';
import type { IPSet } from './ranges.ts';
import { PoolSelectionError, type PoolChoice } from './selection.ts';
import type { AllocationOutcome, AllocationRequest, ReleaseOutcome } from './status.ts';

/**
 * Where the allocator reads pools and changes their records, as host-local's allocator works over its
 * `backend.Store`: the worker's pool writer (src/store) implements it on the API server, a map of pools
 * implements it in the unit tests.
 */
export interface PoolStore {
  /** Every pool: as a watch cache last saw them, or (`fresh`) read live, for a pool created a moment ago. */
  pools(fresh: boolean): Promise<readonly IPPool[]>;
  /** Allocates one IP of `pool`; rejects with PoolNotFoundError when the pool does not exist. */
  allocate(pool: string, request: AllocationRequest, reserved: IPSet): Promise<AllocationOutcome>;
  /** Compare-and-delete of one record; rejects with PoolNotFoundError when the pool does not exist. */
  release(pool: string, ip: string, podUID: string, containerID?: string): Promise<ReleaseOutcome>;
}

export class PoolNotFoundError extends Error {
  constructor(pool: string) {
    super(`IPPool ${pool} does not exist`);
    this.name = 'PoolNotFoundError';
  }
}

/** No pool of one family had a free IP for the pod; `refusals` says what each candidate answered. */
export class NoFreeIPError extends Error {
  constructor(podName: string, family: Family, refusals: readonly string[]) {
    super(`no IPv${family} address is free for pod ${podName} in pool${refusals.length > 1 ? 's' : ''} ${refusals.join(', ')}`);
    this.name = 'NoFreeIPError';
  }
}

export interface AllocatedIP {
  ip: string;
  pool: IPPool;
  /** false: the pod already held it (a repeated ADD, or a StatefulSet pod taking its records over). */
  fresh: boolean;
}

export interface PodAllocation {
  ips: AllocatedIP[];
  /** Where the pool names came from. */
  source: string;
}

/** Releases a record, treating a pool that is gone as nothing left to release. */
export async function releaseRecord(store: PoolStore, pool: string, ip: string, podUID: string, containerID?: string): Promise<ReleaseOutcome> {
  try {
    return await store.release(pool, ip, podUID, containerID);
  } catch (error) {
    if (error instanceof PoolNotFoundError) return { kind: 'not-held' };
    throw error;
  }
}

/**
 * One IP per requested family, from the first candidate pool that has one. Pools are chosen from the store's
 * cached pools, and from a live read when the cache does not know a pool the pod names. When a family gets no
 * IP, the IPs this call newly allocated for the other family are released again before NoFreeIPError, so a
 * failed ADD holds nothing. `onOutcome` is told each pool's answer (for metrics).
 */
export async function allocatePodIPs(
  store: PoolStore,
  choose: (pools: readonly IPPool[]) => Promise<PoolChoice>,
  request: AllocationRequest,
  reserved: Record<Family, IPSet>,
  onOutcome: (pool: string, outcome: AllocationOutcome) => void = () => {},
): Promise<PodAllocation> {
  let pools = await store.pools(false);
  let choice: PoolChoice;
  try {
    choice = await choose(pools);
  } catch (error) {
    if (!(error instanceof PoolSelectionError)) throw error;
    pools = await store.pools(true);
    choice = await choose(pools);
  }
  const byName = new Map(pools.map((pool) => [pool.metadata.name, pool]));
  const ips: AllocatedIP[] = [];
  for (const family of [4, 6] as const) {
    const candidates = choice.pools[family];
    if (!candidates) continue;
    const got = await firstFree(store, candidates, request, reserved[family], byName, onOutcome);
    if (Array.isArray(got)) {
      for (const held of ips.filter((i) => i.fresh)) await releaseRecord(store, held.pool.metadata.name, held.ip, request.podUID, request.containerID);
      throw new NoFreeIPError(request.pod, family, got);
    }
    ips.push(got);
  }
  return { ips, source: choice.source };
}

/** The first candidate's IP, or every candidate's refusal. */
async function firstFree(
  store: PoolStore,
  candidates: readonly string[],
  request: AllocationRequest,
  reserved: IPSet,
  byName: ReadonlyMap<string, IPPool>,
  onOutcome: (pool: string, outcome: AllocationOutcome) => void,
): Promise<AllocatedIP | string[]> {
  const refusals: string[] = [];
  for (const name of candidates) {
    let outcome: AllocationOutcome;
    try {
      outcome = await store.allocate(name, request, reserved);
    } catch (error) {
      if (!(error instanceof PoolNotFoundError)) throw error;
      refusals.push(`${name} (deleted)`);
      continue;
    }
    onOutcome(name, outcome);
    if (outcome.kind === 'allocated' || outcome.kind === 'existing') {
      return { ip: outcome.ip, pool: byName.get(name)!, fresh: outcome.kind === 'allocated' };
    }
    refusals.push(outcome.kind === 'exhausted' ? `${name} (every IP in use or reserved)` : `${name} (${outcome.reason})`);
  }
  return refusals;
}
