import type { ReclaimReason } from '../contract/release-reasons.ts';
import { liveHolders, poolHoldings, type Holder, type IPConflict, type LivePod } from '../ipam/holders.ts';
import { poolAddresses } from '../ipam/pool.ts';
import type { IPPool, PodEndpoint } from '../k8s/types.ts';
import { statefulSetOrdinal, verdict, type GcConfig, type NodeFacts, type PodFacts, type StatefulSetFacts, type Verdict } from './verdict.ts';

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
function compareHolders(snapshot: ClusterSnapshot): Pick<SweepReport, 'unrecorded' | 'conflicts'> {
  const holders = liveHolders(snapshot.endpoints, snapshot.livePods);
  const liveUIDs = new Set(snapshot.livePods.filter((pod) => !pod.finished).map((pod) => pod.uid));
  const unrecorded: UnrecordedIP[] = [];
  const conflicts: IPConflict[] = [];
  for (const pool of snapshot.pools) {
    let addresses;
    try {
      addresses = poolAddresses(pool.metadata.name, pool.spec);
    } catch {
      continue; // a pool whose spec cannot be parsed holds no IP to compare
    }
    const holdings = poolHoldings(pool, addresses, holders, liveUIDs);
    unrecorded.push(...holdings.unrecorded.filter((h) => !h.terminating).map((h) => ({ ...h, pool: pool.metadata.name })));
    conflicts.push(...holdings.conflicts);
  }
  return { unrecorded, conflicts };
}

/**
 * Judges every pool record and every PodEndpoint of a snapshot. `confirmLive` is asked about young records
 * whose pod looks gone or replaced: it answers from a live GET. Returns the report; nothing is changed here.
 */
export async function planSweep(
  snapshot: ClusterSnapshot,
  config: GcConfig,
  now: number,
  confirmLive: (namespace: string, pod: string, uid: string) => Promise<boolean>,
): Promise<SweepReport> {
  const report: SweepReport = {
    dryRun: false,
    scanned: { records: 0, endpoints: snapshot.endpoints.length },
    kept: {},
    waiting: {},
    reclaimed: {},
    reclaims: [],
    ...compareHolders(snapshot),
  };
  const groups = new Map<string, ReclaimGroup>();
  const endpointOf = new Map(snapshot.endpoints.map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));

  const judge = async (podName: string, podUID: string, allocatedAt: number | undefined): Promise<Verdict> => {
    const [namespace = '', pod = ''] = podName.split('/');
    const facts = snapshot.pods.get(podName);
    const input = {
      record: { ip: '', pool: '', pod: podName, podUID, ...(allocatedAt !== undefined ? { allocatedAt } : {}) },
      pod: facts,
      node: facts?.nodeName ? snapshot.nodes.get(facts.nodeName) : undefined,
      statefulSet: statefulSetFor(snapshot, namespace, pod, facts?.statefulSet, endpointOf.get(podName)),
      confirmedLive: false,
      config,
      now,
    };
    const first = verdict(input);
    if (first.action === 'wait' && first.reason === 'RecordTooYoung' && (await confirmLive(namespace, pod, podUID))) {
      return verdict({ ...input, confirmedLive: true });
    }
    return first;
  };

  const add = (podName: string, podUID: string, reason: ReclaimReason, ip: { ip: string; pool: string }) => {
    const key = `${podName}/${podUID}`;
    const [namespace = '', pod = ''] = podName.split('/');
    const group = groups.get(key) ?? { namespace, pod, podUID, reason, ips: [] };
    if (!group.ips.some((i) => i.ip === ip.ip && i.pool === ip.pool)) group.ips.push(ip);
    groups.set(key, group);
  };

  for (const pool of snapshot.pools) {
    for (const [ip, record] of Object.entries(pool.status?.allocatedIPs ?? {})) {
      report.scanned.records++;
      const allocatedAt = record.allocatedAt ? Date.parse(record.allocatedAt) : undefined;
      const decision = await judge(record.pod, record.podUID, allocatedAt);
      if (decision.action === 'keep') count(report.kept, decision.reason);
      else if (decision.action === 'wait') count(report.waiting, decision.reason);
      else {
        count(report.reclaimed, decision.reason);
        add(record.pod, record.podUID, decision.reason, { ip, pool: pool.metadata.name });
      }
    }
  }

  for (const endpoint of snapshot.endpoints) {
    const podName = `${endpoint.metadata.namespace}/${endpoint.metadata.name}`;
    const key = `${podName}/${endpoint.status.podUID}`;
    if (groups.has(key)) continue;
    const created = endpoint.metadata.creationTimestamp ? new Date(endpoint.metadata.creationTimestamp).getTime() : undefined;
    const decision = await judge(podName, endpoint.status.podUID, created);
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
