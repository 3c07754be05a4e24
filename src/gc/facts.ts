import type { V1Node, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { LivePod } from '../ipam/holders.ts';
import type { AllocationRecord, PodEndpoint } from '../k8s/types.ts';
import type { EndpointFacts, NodeFacts, PodFacts, RecordFacts, StatefulSetFacts } from './verdict.ts';

const PHASES = new Set(['Pending', 'Running', 'Succeeded', 'Failed']);

function epoch(time: Date | string | undefined): number | undefined {
  if (time === undefined) return undefined;
  const ms = time instanceof Date ? time.getTime() : Date.parse(time);
  return Number.isNaN(ms) ? undefined : ms;
}

/** What the verdict needs to know about a pod. */
export function podFacts(pod: V1Pod): PodFacts {
  const finished = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]
    .map((c) => epoch(c.state?.terminated?.finishedAt))
    .filter((t): t is number => t !== undefined);
  const phase = pod.status?.phase ?? 'Pending';
  return {
    uid: pod.metadata?.uid ?? '',
    phase: (PHASES.has(phase) ? phase : 'Unknown') as PodFacts['phase'],
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    podIPs: (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => Boolean(ip)),
    ...(pod.metadata?.deletionTimestamp ? { deletionTimestamp: epoch(pod.metadata.deletionTimestamp) } : {}),
    ...(pod.metadata?.deletionGracePeriodSeconds !== undefined ? { deletionGracePeriodSeconds: pod.metadata.deletionGracePeriodSeconds } : {}),
    ...(pod.spec?.terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds: pod.spec.terminationGracePeriodSeconds } : {}),
    ...(finished.length > 0 ? { finishedAt: Math.max(...finished) } : {}),
  };
}

/** A pool's record of `ip`, as the verdict reads it. */
export function recordFacts(pool: string, ip: string, record: AllocationRecord): RecordFacts {
  const allocatedAt = epoch(record.allocatedAt);
  return { ip, pool, pod: record.pod, podUID: record.podUID, ...(allocatedAt !== undefined ? { allocatedAt } : {}) };
}

/** What the verdict needs to know about a pod's PodEndpoint: its pod UID and the IPs it names, without prefix. */
export function endpointFacts(endpoint: PodEndpoint): EndpointFacts {
  return { podUID: endpoint.status.podUID, ips: endpoint.status.ips.map((entry) => ({ ip: entry.address.split('/')[0] ?? '', pool: entry.pool })) };
}

/** A node is Ready only while its Ready condition says True. */
export function nodeFacts(node: V1Node): NodeFacts {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
  return { name: node.metadata?.name ?? '', ready: ready?.status === 'True' };
}

export function statefulSetFacts(name: string, set: V1StatefulSet | undefined): StatefulSetFacts {
  return {
    name,
    exists: set !== undefined,
    deleting: Boolean(set?.metadata?.deletionTimestamp),
    replicas: set?.spec?.replicas ?? 1,
    ordinalStart: set?.spec?.ordinals?.start ?? 0,
  };
}

/** The StatefulSet that owns a pod, from its controller reference. */
export function statefulSetOwner(pod: V1Pod | undefined): string | undefined {
  const owner = pod?.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === 'StatefulSet');
  return owner?.name;
}

/** What the holders of IPs (src/ipam/holders.ts) need to know about a pod. */
export function livePod(pod: V1Pod): LivePod {
  const phase = pod.status?.phase;
  return {
    pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
    uid: pod.metadata?.uid ?? '',
    ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}),
    podIPs: (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => Boolean(ip)),
    terminating: Boolean(pod.metadata?.deletionTimestamp),
    finished: phase === 'Succeeded' || phase === 'Failed',
    ready: (pod.status?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True'),
  };
}
