import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { EventsV1Api, type EventsV1Event, type KubeConfig } from '@kubernetes/client-node';
import { kubeCall, KubeApiError } from './errors.ts';

/** The `reportingController` of every Event Tidepool writes. */
export const REPORTING_CONTROLLER = 'tidepool.dev/worker';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid?: string;
}

export interface TidepoolEvent {
  regarding: EventTarget;
  type: 'Normal' | 'Warning';
  /** CamelCase, as `kubectl get events` shows it. */
  reason: string;
  action: string;
  note: string;
}

/**
 * A MicroTime as the API server parses it (six fractional digits). The client's models type MicroTime fields
 * as Date, and a Date would be sent with three digits, which the API server refuses.
 */
function microTime(time: Date): Date {
  return time.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

/**
 * Records Events through events.k8s.io/v1. The same event again (same object, reason and note) updates one
 * Event's series count instead of creating another, as kubelet's aggregation does, so a condition seen at every
 * sweep does not fill etcd.
 */
export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly instance = `${REPORTING_CONTROLLER}-${hostname()}`;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(EventsV1Api);
  }

  async record(event: TidepoolEvent): Promise<void> {
    const namespace = event.regarding.namespace ?? 'default';
    const key = createHash('sha256').update(`${event.regarding.kind}/${event.regarding.uid ?? event.regarding.name}/${event.reason}/${event.note}`).digest('hex').slice(0, 16);
    const name = `${event.regarding.name}.${key}`;
    const now = microTime(new Date());
    const body: EventsV1Event = {
      metadata: { name, namespace },
      eventTime: now,
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.instance,
      action: event.action,
      reason: event.reason,
      note: event.note.slice(0, 1024),
      type: event.type,
      regarding: event.regarding,
    };
    try {
      await kubeCall(`create Event ${namespace}/${name}`, () => this.api.createNamespacedEvent({ namespace, body }));
    } catch (error) {
      if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
      const existing = await kubeCall(`get Event ${namespace}/${name}`, () => this.api.readNamespacedEvent({ namespace, name }));
      const series = { count: (existing.series?.count ?? 1) + 1, lastObservedTime: now };
      await kubeCall(`update Event ${namespace}/${name}`, () => this.api.replaceNamespacedEvent({ namespace, name, body: { ...existing, series } }));
    }
  }
}
