// The chaos run's invariants: pure verdicts over facts read from the API server and Temporal, so that every
// rule is tested without a cluster. I/O lives in sim/chaos/facts.ts.

/** A pod as the invariants see it. */
export interface PodFact {
  /** `namespace/name` */
  pod: string;
  uid: string;
  /** Deleted (deletionTimestamp set) or finished (Succeeded, Failed): no longer entitled to an IP. */
  gone: boolean;
  /** Running with Ready=True and its IPs in status.podIPs: it uses its IPs. */
  ready: boolean;
  ips: string[];
}

/** One allocation record of an IPPool's status. */
export interface RecordFact {
  pool: string;
  ip: string;
  /** `namespace/name` */
  pod: string;
  podUID: string;
}

export interface PoolCountFact {
  pool: string;
  /** status.allocatedIPCount, when the pool writes one. */
  allocatedIPCount?: number;
  /** How many records status.allocatedIPs holds. */
  records: number;
}

export interface EndpointFact {
  /** `namespace/name` */
  pod: string;
  podUID: string;
  /** Addresses without their prefix length. */
  ips: string[];
}

/** An open (Running) podIPLifecycle workflow, from its search attributes. */
export interface LifecycleFact {
  workflowId: string;
  /** TidepoolPod */
  pod?: string;
  /** TidepoolPodUID */
  podUID?: string;
  /** TidepoolState */
  state?: string;
  /** TidepoolIPs: every IP the lifecycle has held. */
  ips: string[];
}

export const INVARIANTS = [
  'ip-held-twice',
  'ip-used-without-record',
  'ip-leaked',
  'pod-not-running',
  'pool-count',
  'endpoint',
  'lifecycle',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: Invariant;
  /** Epoch ms of the sample that showed it. */
  at: number;
  detail: string;
}

/**
 * No IP held by two pods that use it: among pods that are not gone and are Ready with their IPs, each IP has
 * one holder. One pod list is one consistent read, so this needs no second look.
 */
export function ipsHeldTwice(pods: readonly PodFact[], at: number): Violation[] {
  const holders = new Map<string, string[]>();
  for (const pod of pods) {
    if (pod.gone || !pod.ready) continue;
    for (const ip of pod.ips) holders.set(ip, [...(holders.get(ip) ?? []), `${pod.pod} (uid ${pod.uid})`]);
  }
  return [...holders]
    .filter(([, names]) => names.length > 1)
    .map(([ip, names]) => ({ invariant: 'ip-held-twice', at, detail: `${ip} is used by ${names.join(' and ')}` }));
}

/** Records whose pod (by UID) is not among the pods that are still entitled to an IP. */
function recordsWithoutLivePod(records: readonly RecordFact[], pods: readonly PodFact[]): RecordFact[] {
  const live = new Set(pods.filter((pod) => !pod.gone).map((pod) => pod.uid));
  return records.filter((record) => !live.has(record.podUID));
}

/** IPs a Ready pod uses that the pools do not record for that pod (absent, or recorded for another UID). */
function usedWithoutRecord(records: readonly RecordFact[], pods: readonly PodFact[]): { pod: PodFact; ip: string; recordedFor?: RecordFact }[] {
  const byIP = new Map(records.map((record) => [record.ip, record]));
  return pods
    .filter((pod) => !pod.gone && pod.ready)
    .flatMap((pod) => pod.ips.map((ip) => ({ pod, ip, recordedFor: byIP.get(ip) })))
    .filter(({ pod, recordedFor }) => recordedFor?.podUID !== pod.uid);
}

function describeRecord(record: RecordFact): string {
  return `${record.ip} in pool ${record.pool} for ${record.pod} (uid ${record.podUID})`;
}

/**
 * The invariants judged across samples during the run, where one read of pools and one of pods are not one
 * atomic view (the pools are read first):
 * - a record whose pod is gone must be reclaimed within `reclaimWindowMs` of the first sample that showed it;
 * - an IP a Ready pod uses must be recorded for that pod: a mismatch seen in two consecutive samples is a
 *   violation (a single one can be an allocation that landed between the two reads).
 * Each violation is reported once.
 */
export class SampledInvariants {
  private readonly reclaimWindowMs: number;
  private readonly orphanSince = new Map<string, number>();
  private unrecordedBefore = new Set<string>();
  private readonly reported = new Set<string>();

  constructor(reclaimWindowMs: number) {
    this.reclaimWindowMs = reclaimWindowMs;
  }

  observe(records: readonly RecordFact[], pods: readonly PodFact[], at: number): Violation[] {
    const violations: Violation[] = ipsHeldTwice(pods, at);
    const orphans = recordsWithoutLivePod(records, pods);
    const orphanKeys = new Set<string>();
    for (const record of orphans) {
      const key = `${record.pool}|${record.ip}|${record.podUID}`;
      orphanKeys.add(key);
      const since = this.orphanSince.get(key) ?? at;
      this.orphanSince.set(key, since);
      if (at - since > this.reclaimWindowMs && this.once(`leak|${key}`)) {
        violations.push({
          invariant: 'ip-leaked',
          at,
          detail: `${describeRecord(record)} is still allocated ${Math.round((at - since) / 1000)} s after its pod was first seen gone (window ${this.reclaimWindowMs / 1000} s)`,
        });
      }
    }
    for (const key of this.orphanSince.keys()) if (!orphanKeys.has(key)) this.orphanSince.delete(key);

    const unrecorded = new Set<string>();
    for (const { pod, ip, recordedFor } of usedWithoutRecord(records, pods)) {
      const key = `${ip}|${pod.uid}`;
      unrecorded.add(key);
      if (this.unrecordedBefore.has(key) && this.once(`unrecorded|${key}`)) {
        violations.push({
          invariant: 'ip-used-without-record',
          at,
          detail: `${pod.pod} (uid ${pod.uid}) is Ready with ${ip}, which ${recordedFor ? `is recorded for ${recordedFor.pod} (uid ${recordedFor.podUID})` : 'no pool records'}, in two samples in a row`,
        });
      }
    }
    this.unrecordedBefore = unrecorded;
    return violations;
  }

  private once(key: string): boolean {
    if (this.reported.has(key)) return false;
    this.reported.add(key);
    return true;
  }
}

export interface FinalFacts {
  pods: readonly PodFact[];
  records: readonly RecordFact[];
  pools: readonly PoolCountFact[];
  endpoints: readonly EndpointFact[];
  lifecycles: readonly LifecycleFact[];
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/**
 * The end state once faults and churn have stopped and the reclaim window has passed, all four sources in
 * agreement: every pod not gone is Ready with its IPs; the pools record exactly those IPs, each for its pod,
 * and count their records right; each such pod has a PodEndpoint with its UID and IPs and one open lifecycle
 * in state Allocated whose search attributes name it and its IPs; no record, endpoint or open lifecycle is
 * left for a pod that is gone.
 */
export function finalViolations(facts: FinalFacts, at: number): Violation[] {
  const violations: Violation[] = [];
  const add = (invariant: Invariant, detail: string) => violations.push({ invariant, at, detail });
  const live = facts.pods.filter((pod) => !pod.gone);
  const liveByName = new Map(live.map((pod) => [pod.pod, pod]));

  violations.push(...ipsHeldTwice(facts.pods, at));
  for (const pod of live) {
    if (!pod.ready || pod.ips.length === 0) add('pod-not-running', `${pod.pod} (uid ${pod.uid}) is not Running and Ready with an IP`);
  }
  for (const record of recordsWithoutLivePod(facts.records, facts.pods)) add('ip-leaked', `${describeRecord(record)}: its pod is gone`);
  for (const { pod, ip, recordedFor } of usedWithoutRecord(facts.records, facts.pods)) {
    add('ip-used-without-record', `${pod.pod} (uid ${pod.uid}) uses ${ip}, which ${recordedFor ? `is recorded for ${recordedFor.pod} (uid ${recordedFor.podUID})` : 'no pool records'}`);
  }
  for (const record of facts.records) {
    const pod = liveByName.get(record.pod);
    if (pod && pod.uid === record.podUID && pod.ready && !pod.ips.includes(record.ip)) {
      add('ip-leaked', `${describeRecord(record)}: the pod uses ${pod.ips.join(', ')}, not this IP`);
    }
  }
  for (const pool of facts.pools) {
    if (pool.allocatedIPCount !== undefined && pool.allocatedIPCount !== pool.records) {
      add('pool-count', `pool ${pool.pool} counts ${pool.allocatedIPCount} allocated IPs but records ${pool.records}`);
    }
  }

  const endpoints = new Map(facts.endpoints.map((endpoint) => [endpoint.pod, endpoint]));
  for (const pod of live) {
    const endpoint = endpoints.get(pod.pod);
    if (!endpoint) add('endpoint', `${pod.pod} has no PodEndpoint`);
    else if (endpoint.podUID !== pod.uid || !sameSet(endpoint.ips, pod.ips)) {
      add('endpoint', `PodEndpoint ${pod.pod} says uid ${endpoint.podUID} with ${endpoint.ips.join(', ')}; the pod is uid ${pod.uid} with ${pod.ips.join(', ')}`);
    }
  }
  for (const endpoint of facts.endpoints) {
    if (liveByName.get(endpoint.pod)?.uid !== endpoint.podUID) add('endpoint', `PodEndpoint ${endpoint.pod} (uid ${endpoint.podUID}) is left for a pod that is gone`);
  }

  const lifecycles = new Map<string, LifecycleFact[]>();
  for (const lifecycle of facts.lifecycles) {
    const key = lifecycle.pod ?? lifecycle.workflowId;
    lifecycles.set(key, [...(lifecycles.get(key) ?? []), lifecycle]);
  }
  for (const pod of live) {
    const open = lifecycles.get(pod.pod) ?? [];
    if (open.length !== 1) {
      add('lifecycle', `${pod.pod} has ${open.length} open lifecycles (${open.map((l) => l.workflowId).join(', ') || 'none'}), not one`);
      continue;
    }
    const [lifecycle] = open as [LifecycleFact];
    const missing = pod.ips.filter((ip) => !lifecycle.ips.includes(ip));
    if (lifecycle.state !== 'Allocated' || lifecycle.podUID !== pod.uid || missing.length > 0) {
      add(
        'lifecycle',
        `${lifecycle.workflowId} says state ${lifecycle.state}, uid ${lifecycle.podUID}, IPs ${lifecycle.ips.join(', ')}; the pod is uid ${pod.uid} with ${pod.ips.join(', ')}`,
      );
    }
  }
  for (const [pod, open] of lifecycles) {
    if (!liveByName.has(pod)) {
      for (const lifecycle of open) add('lifecycle', `${lifecycle.workflowId} (state ${lifecycle.state}, uid ${lifecycle.podUID}) is still open for a pod that is gone`);
    }
  }
  return violations;
}
