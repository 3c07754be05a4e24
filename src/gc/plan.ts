import type { SweepScope } from '../contract/pools.ts';
import type { ReclaimReason } from '../contract/release-reasons.ts';
import { liveHolders, poolHoldings, type Holder, type IPConflict, type LivePod } from '../ipam/holders.ts';
import { poolAddresses } from '../ipam/pool.ts';
import type { IPPool, PodEndpoint } from '../k8s/types.ts';
import { endpointFacts } from './facts.ts';
import { recordVerdict, statefulSetOrdinal, verdict, type GcConfig, type NodeFacts, type PodFacts, type StatefulSetFacts, type Verdict } from './verdict.ts';

/** Everything a sweep read from the API server, pools first (so that no record is newer than the pod list). */
export interface ClusterSnapshot {
  pools: IPPool[];
  pods: Map<string, PodFacts & { statefulSet?: string }>;
  nodes: Map<string, NodeFacts>;
  /** By `namespace/name`. */
  statefulSets: Map<string, StatefulSetFacts>;
  endpoints: PodEndpoint[];
  /** Every pod of the list, as the holders of IPs see it. */
  livePods: LivePod[];
}

/** An IP a live pod holds (by its PodEndpoint or `status.podIPs`) that its pool does not record. */
export type UnrecordedIP = Holder & { pool: string };

export interface ReclaimGroup {
  namespace: string;
  pod: string;
  podUID: string;
  reason: ReclaimReason;
  ips: { ip: string; pool: string }[];
}

export interface SweepReport {
  dryRun: boolean;
  /** The pools and namespaces the sweep was aimed at; absent for a sweep of the whole cluster. */
  scope?: SweepScope;
  scanned: { records: number; endpoints: number };
  kept: Record<string, number>;
  waiting: Record<string, number>;
  reclaimed: Record<string, number>;
  /** What was (or, in a dry run, would be) reclaimed. */
  reclaims: ReclaimGroup[];
  /** IPs live pods hold that no pool records: recorded again by the sweep (a dry run only reports them). */
  unrecorded: UnrecordedIP[];
  /** IPs two or more live pods hold at once: reported, never released by the sweep. */
  conflicts: IPConflict[];
}

function count(into: Record<string, number>, reason: string, n = 1): void {
  into[reason] = (into[reason] ?? 0) + n;
}

/** The StatefulSet a pod name belongs to: from the pod, its PodEndpoint, or a StatefulSet `<set>-<n>` in its namespace. */
function statefulSetFor(snapshot: ClusterSnapshot, namespace: string, pod: string, fromPod: string | undefined, endpoint: PodEndpoint | undefined): StatefulSetFacts | undefined {
  const name =
    fromPod ??
    (endpoint?.status.ownerKind === 'StatefulSet' ? endpoint.status.ownerName : undefined) ??
    [...snapshot.statefulSets.entries()].find(
      ([key, set]) => key === `${namespace}/${set.name}` && statefulSetOrdinal(pod, set.name) !== undefined,
    )?.[1].name;
  if (!name) return undefined;
  return snapshot.statefulSets.get(`${namespace}/${name}`) ?? { name, exists: false, deleting: false, replicas: 0, ordinalStart: 0 };
}

/**
 * The unrecorded IPs and the conflicts of every pool. A terminating pod's IP that its pool no longer records is
 * not reported as unrecorded: its release has just run, and recording it again would only leak it.
 */
function compareHolders(snapshot: ClusterSnapshot, inScope: ScopeTest): Pick<SweepReport, 'unrecorded' | 'conflicts'> {
  const holders = liveHolders(snapshot.endpoints, snapshot.livePods);
  const liveUIDs = new Set(snapshot.livePods.filter((pod) => !pod.finished).map((pod) => pod.uid));
  const unrecorded: UnrecordedIP[] = [];
  const conflicts: IPConflict[] = [];
  for (const pool of snapshot.pools) {
    if (!inScope.pool(pool.metadata.name)) continue;
    let addresses;
    try {
      addresses = poolAddresses(pool.metadata.name, pool.spec);
    } catch {
      continue; // a pool whose spec cannot be parsed holds no IP to compare
    }
    const holdings = poolHoldings(pool, addresses, holders, liveUIDs);
    unrecorded.push(...holdings.unrecorded.filter((h) => !h.terminating && inScope.pod(h.pod)).map((h) => ({ ...h, pool: pool.metadata.name })));
    conflicts.push(...holdings.conflicts.filter((conflict) => conflict.holders.some((h) => inScope.pod(h.pod))));
  }
  return { unrecorded, conflicts };
}

interface ScopeTest {
  pool: (name: string) => boolean;
  /** `namespace/name` */
  pod: (name: string) => boolean;
}

function scopeTest(scope: SweepScope): ScopeTest {
  const pools = scope.pools ? new Set(scope.pools) : undefined;
  const namespaces = scope.namespaces ? new Set(scope.namespaces) : undefined;
  const excluded = new Set(scope.excludeNamespaces ?? []);
  return {
    pool: (name) => !pools || pools.has(name),
    pod: (name) => {
      const namespace = name.split('/')[0] ?? '';
      return (!namespaces || namespaces.has(namespace)) && !excluded.has(namespace);
    },
  };
}

/**
 * Judges every pool record and every PodEndpoint of a snapshot, or those of the scope's pools and namespaces.
 * `confirmLive` is asked about young records whose pod looks gone or replaced: it answers from a live GET.
 * Returns the report; nothing is changed here.
 */
export async function planSweep(
  snapshot: ClusterSnapshot,
  config: GcConfig,
  now: number,
  confirmLive: (namespace: string, pod: string, uid: string) => Promise<boolean>,
  scope: SweepScope = {},
): Promise<SweepReport> {
  const inScope = scopeTest(scope);
  const endpoints = snapshot.endpoints.filter(
    (e) => inScope.pod(`${e.metadata.namespace}/${e.metadata.name}`) && (!scope.pools || e.status.ips.some((entry) => inScope.pool(entry.pool))),
  );
  const report: SweepReport = {
    dryRun: false,
    ...(scope.pools || scope.namespaces ? { scope } : {}),
    scanned: { records: 0, endpoints: endpoints.length },
    kept: {},
    waiting: {},
    reclaimed: {},
    reclaims: [],
    ...compareHolders(snapshot, inScope),
  };
  const groups = new Map<string, ReclaimGroup>();
  const endpointOf = new Map(snapshot.endpoints.map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));

  /** A pool record's verdict, or (with `record.ip` empty) a PodEndpoint's, which is never stale for its own pod. */
  const judge = async (record: { ip: string; pool: string; pod: string; podUID: string; allocatedAt?: number }): Promise<Verdict> => {
    const [namespace = '', pod = ''] = record.pod.split('/');
    const facts = snapshot.pods.get(record.pod);
    const endpoint = endpointOf.get(record.pod);
    const input = {
      record,
      pod: facts,
      node: facts?.nodeName ? snapshot.nodes.get(facts.nodeName) : undefined,
      statefulSet: statefulSetFor(snapshot, namespace, pod, facts?.statefulSet, endpoint),
      endpoint: endpoint ? endpointFacts(endpoint) : undefined,
      confirmedLive: false,
      config,
      now,
    };
    const decide = record.ip === '' ? verdict : recordVerdict;
    const first = decide(input);
    if (first.action === 'wait' && first.reason === 'RecordTooYoung' && (await confirmLive(namespace, pod, record.podUID))) {
      return decide({ ...input, confirmedLive: true });
    }
    return first;
  };

  // A stale record is reclaimed on its own, never with the live pod's other IPs.
  const groupKey = (podName: string, podUID: string, reason: ReclaimReason) => `${podName}/${podUID}${reason === 'StaleRecord' ? '/stale' : ''}`;
  const add = (podName: string, podUID: string, reason: ReclaimReason, ip: { ip: string; pool: string }) => {
    const key = groupKey(podName, podUID, reason);
    const [namespace = '', pod = ''] = podName.split('/');
    const group = groups.get(key) ?? { namespace, pod, podUID, reason, ips: [] };
    if (!group.ips.some((i) => i.ip === ip.ip && i.pool === ip.pool)) group.ips.push(ip);
    groups.set(key, group);
  };

  for (const pool of snapshot.pools) {
    if (!inScope.pool(pool.metadata.name)) continue;
    for (const [ip, record] of Object.entries(pool.status?.allocatedIPs ?? {})) {
      if (!inScope.pod(record.pod)) continue;
      report.scanned.records++;
      const allocatedAt = record.allocatedAt ? Date.parse(record.allocatedAt) : undefined;
      const decision = await judge({ ip, pool: pool.metadata.name, pod: record.pod, podUID: record.podUID, ...(allocatedAt !== undefined ? { allocatedAt } : {}) });
      if (decision.action === 'keep') count(report.kept, decision.reason);
      else if (decision.action === 'wait') count(report.waiting, decision.reason);
      else {
        count(report.reclaimed, decision.reason);
        add(record.pod, record.podUID, decision.reason, { ip, pool: pool.metadata.name });
      }
    }
  }

  for (const endpoint of endpoints) {
    const podName = `${endpoint.metadata.namespace}/${endpoint.metadata.name}`;
    const key = `${podName}/${endpoint.status.podUID}`;
    if (groups.has(key)) continue;
    const created = endpoint.metadata.creationTimestamp ? new Date(endpoint.metadata.creationTimestamp).getTime() : undefined;
    const decision = await judge({ ip: '', pool: '', pod: podName, podUID: endpoint.status.podUID, ...(created !== undefined ? { allocatedAt: created } : {}) });
    if (decision.action !== 'reclaim') continue;
    count(report.reclaimed, 'EndpointWithoutPod');
    groups.set(key, {
      namespace: endpoint.metadata.namespace,
      pod: endpoint.metadata.name,
      podUID: endpoint.status.podUID,
      reason: 'EndpointWithoutPod',
      ips: endpoint.status.ips.map((e) => ({ ip: e.address.split('/')[0]!, pool: e.pool })),
    });
  }
  report.reclaims = [...groups.values()];
  return report;
}
