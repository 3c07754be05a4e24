import type { V1Pod } from '@kubernetes/client-node';
import { endpointFacts, podFacts, recordFacts } from '../gc/facts.ts';
import { staleRecordVerdict, type GcConfig } from '../gc/verdict.ts';
import type { AllocationRecord, IPPool, PodEndpoint } from '../k8s/types.ts';

/** A record that looked stale from the caches, to be judged again at `due`. */
interface Suspect {
  pool: string;
  ip: string;
  podUID: string;
  due: number;
}

export interface StaleRecordWatchOptions {
  gc: GcConfig;
  pod: (namespace: string, name: string) => V1Pod | undefined;
  endpoint: (namespace: string, name: string) => PodEndpoint | undefined;
  pool: (name: string) => IPPool | undefined;
  /** Hands the stale records of one pod UID to its lifecycle. */
  reclaim: (namespace: string, pod: string, podUID: string, ips: { ip: string; pool: string }[]) => void;
}

const recordKey = (pool: string, ip: string) => `${pool}/${ip}`;
/** What makes a record another one: a new pod UID or container on the same IP is judged afresh. */
const signature = (record: AllocationRecord) => `${record.podUID}/${record.containerID ?? ''}/${record.allocatedAt ?? ''}`;

/**
 * Finds, from the watch caches, the records of live pods that nothing the pod uses names (staleRecordVerdict in
 * src/gc/verdict.ts), and hands them to the pod's lifecycle once they are old enough to judge. Every fresh
 * allocation is such a record for the moment between its pool write and its PodEndpoint's, so a record is only
 * a suspect until its due time, when the caches are asked again; the lifecycle then judges it live before it
 * releases anything. The in-memory timer is only a delay: a worker that restarts finds the records again from
 * its first pool list, and the sweep covers whatever is missed.
 */
export function createStaleRecordWatch(options: StaleRecordWatchOptions) {
  const seen = new Map<string, Map<string, string>>();
  const suspects = new Map<string, Suspect>();
  let timer: NodeJS.Timeout | undefined;
  let armedFor = Number.POSITIVE_INFINITY;
  let stopped = false;

  function judge(pool: string, ip: string, record: AllocationRecord, now: number) {
    const [namespace = '', name = ''] = record.pod.split('/');
    const pod = options.pod(namespace, name);
    const endpoint = options.endpoint(namespace, name);
    return staleRecordVerdict({
      record: recordFacts(pool, ip, record),
      pod: pod ? podFacts(pod) : undefined,
      endpoint: endpoint ? endpointFacts(endpoint) : undefined,
      config: options.gc,
      now,
    });
  }

  function arm(): void {
    if (stopped || suspects.size === 0) return;
    const next = Math.min(...[...suspects.values()].map((s) => s.due));
    if (timer && next >= armedFor) return;
    clearTimeout(timer);
    armedFor = next;
    timer = setTimeout(fire, Math.max(0, next - Date.now()));
  }

  function fire(): void {
    timer = undefined;
    armedFor = Number.POSITIVE_INFINITY;
    const now = Date.now();
    const byPod = new Map<string, { namespace: string; pod: string; podUID: string; ips: { ip: string; pool: string }[] }>();
    for (const [key, suspect] of suspects) {
      if (suspect.due > now) continue;
      suspects.delete(key);
      const record = options.pool(suspect.pool)?.status?.allocatedIPs?.[suspect.ip];
      if (!record || record.podUID !== suspect.podUID) continue;
      const decision = judge(suspect.pool, suspect.ip, record, now);
      if (decision?.action === 'wait') suspects.set(key, { ...suspect, due: decision.until });
      if (decision?.action !== 'reclaim') continue;
      const [namespace = '', pod = ''] = record.pod.split('/');
      const group = byPod.get(`${record.pod}/${record.podUID}`) ?? { namespace, pod, podUID: record.podUID, ips: [] };
      group.ips.push({ ip: suspect.ip, pool: suspect.pool });
      byPod.set(`${record.pod}/${record.podUID}`, group);
    }
    for (const group of byPod.values()) options.reclaim(group.namespace, group.pod, group.podUID, group.ips);
    arm();
  }

  return {
    /** A pool was listed or changed: its new records are judged from the caches. */
    onPool(pool: IPPool): void {
      const name = pool.metadata.name;
      const before = seen.get(name) ?? new Map<string, string>();
      const after = new Map<string, string>();
      const now = Date.now();
      for (const [ip, record] of Object.entries(pool.status?.allocatedIPs ?? {})) {
        const current = signature(record);
        after.set(ip, current);
        if (before.get(ip) === current) continue;
        const decision = judge(name, ip, record, now);
        if (decision?.action === 'reclaim') suspects.set(recordKey(name, ip), { pool: name, ip, podUID: record.podUID, due: now });
        else if (decision?.action === 'wait') suspects.set(recordKey(name, ip), { pool: name, ip, podUID: record.podUID, due: decision.until });
      }
      seen.set(name, after);
      arm();
    },
    onPoolDeleted(pool: IPPool): void {
      seen.delete(pool.metadata.name);
      for (const [key, suspect] of suspects) if (suspect.pool === pool.metadata.name) suspects.delete(key);
    },
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
