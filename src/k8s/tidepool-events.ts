// Every Kubernetes Event Tidepool writes: its reason, its type, the object it regards and the note an operator
// reads in `kubectl describe` and `kubectl get events`. The writers (activities, the controller) only pick one.
import { releaseReasonText, type ReleaseReason } from '../contract/release-reasons.ts';
import type { EventTarget, TidepoolEvent } from './events.ts';
import { API_VERSION } from './types.ts';

export const EVENT_REASONS = ['IPAllocationFailed', 'PoolExhausted', 'IPReclaimed', 'DuplicateIP', 'UnrecordedIP', 'ReservedIPHeld'] as const;
export type EventReason = (typeof EVENT_REASONS)[number];

export function podTarget(podName: string, uid?: string): EventTarget {
  const [namespace = '', name = ''] = podName.split('/');
  return { apiVersion: 'v1', kind: 'Pod', namespace, name, ...(uid ? { uid } : {}) };
}

export function poolTarget(pool: string, uid?: string): EventTarget {
  return { apiVersion: API_VERSION, kind: 'IPPool', name: pool, ...(uid ? { uid } : {}) };
}

export function reservedIPTarget(name: string, uid?: string): EventTarget {
  return { apiVersion: API_VERSION, kind: 'ReservedIP', name, ...(uid ? { uid } : {}) };
}

function event(regarding: EventTarget, type: TidepoolEvent['type'], reason: EventReason, action: string, note: string): TidepoolEvent {
  return { regarding, type, reason, action, note };
}

/** On the pod: its CNI ADD got no IP, with the allocator's own message. */
export function allocationFailed(podName: string, podUID: string, failureType: string, message: string): TidepoolEvent {
  return event(podTarget(podName, podUID), 'Warning', 'IPAllocationFailed', 'Allocate', `${message} (${failureType})`);
}

/** On the pool: a pod asked for an IP and none was free. */
export function poolExhausted(pool: string, podName: string): TidepoolEvent {
  return event(poolTarget(pool), 'Warning', 'PoolExhausted', 'Allocate', `no free IP for pod ${podName}: every allocatable IP is allocated, reserved or cooling down`);
}

/** On each pool: the leaked IPs that were taken back (`released` of `ips`), with the pod and the reason. */
export function ipsReclaimed(ips: readonly { ip: string; pool: string }[], released: readonly string[], podName: string, podUID: string, reason: ReleaseReason): TidepoolEvent[] {
  return [...new Set(ips.map((i) => i.pool))].flatMap((pool) => {
    const taken = ips.filter((i) => i.pool === pool && released.includes(i.ip)).map((i) => i.ip);
    if (taken.length === 0) return [];
    return [event(poolTarget(pool), 'Normal', 'IPReclaimed', 'Reclaim', `reclaimed ${taken.join(', ')} from pod ${podName} (UID ${podUID}): ${releaseReasonText(reason)}`)];
  });
}

/** On each pod, and on the pool: one IP held by more than one live pod. */
export function duplicateIP(regarding: EventTarget, pool: string, ip: string, podNames: readonly string[]): TidepoolEvent {
  return event(
    regarding,
    'Warning',
    'DuplicateIP',
    'Sweep',
    `IP ${ip} of IPPool ${pool} is held by more than one live pod: ${podNames.join(', ')}. Tidepool releases neither; delete the pod that must not have it.`,
  );
}

/** On the pool: a live pod holds one of its IPs with no record of it. */
export function unrecordedIP(pool: string, ip: string, podName: string, source: string, recorded: boolean): TidepoolEvent {
  return event(
    poolTarget(pool),
    'Warning',
    'UnrecordedIP',
    'Sweep',
    `IP ${ip} is held by live pod ${podName} (its ${source}) with no record in the pool: ${recorded ? 'recorded again' : 'reported only, as status.podIPs alone may lag the runtime'}`,
  );
}

/** On the ReservedIP: a pod holds one of its IPs (it took the IP before the reservation). */
export function reservedIPHeld(reservation: string, uid: string | undefined, ip: string, podName: string): TidepoolEvent {
  return event(
    reservedIPTarget(reservation, uid),
    'Warning',
    'ReservedIPHeld',
    'Reserve',
    `reserved IP ${ip} is held by pod ${podName}; no other pod gets it, and it is reserved once the pod releases it`,
  );
}
