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
export function microTime(time: Date): Date {
  return time.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

/** client-go's spam filter: a burst per object and reason, then one more Event every refill period. */
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60_000;
/** Buckets kept at most; the oldest go first (a forgotten bucket only starts full again). */
const SPAM_BUCKETS = 10_000;

/**
 * Records Events through events.k8s.io/v1. The same event again (same object, reason and note) updates one
 * Event's series count instead of creating another, as kubelet's aggregation does, so a condition seen at every
 * sweep does not fill etcd. Each object and reason gets a burst of 25 Events and then one per 5 minutes, as
 * client-go's spam filter gives kubelet, so a pod whose ADD fails in a loop cannot flood the API server.
 */
export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly instance: string;
  private readonly controller: string;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(kubeConfig: KubeConfig, reportingController = REPORTING_CONTROLLER) {
    this.api = kubeConfig.makeApiClient(EventsV1Api);
    this.controller = reportingController;
    this.instance = `${reportingController}-${hostname()}`;
  }

  /** Whether the object's reason has a token left; takes it. */
  private allowed(event: TidepoolEvent, now: number): boolean {
    const key = `${event.regarding.kind}/${event.regarding.namespace ?? ''}/${event.regarding.uid ?? event.regarding.name}/${event.reason}`;
    const bucket = this.buckets.get(key) ?? { tokens: SPAM_BURST, at: now };
    const tokens = Math.min(SPAM_BURST, bucket.tokens + (now - bucket.at) / SPAM_REFILL_MS);
    this.buckets.delete(key);
    if (this.buckets.size >= SPAM_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now });
      return false;
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return true;
  }

  /** Writes the Event; false when the spam filter dropped it. */
  async record(event: TidepoolEvent): Promise<boolean> {
    if (!this.allowed(event, Date.now())) return false;
    const namespace = event.regarding.namespace ?? 'default';
    const key = createHash('sha256').update(`${event.regarding.kind}/${event.regarding.uid ?? event.regarding.name}/${event.reason}/${event.note}`).digest('hex').slice(0, 16);
    const name = `${event.regarding.name}.${key}`;
    const now = microTime(new Date());
    const body: EventsV1Event = {
      metadata: { name, namespace },
      eventTime: now,
      reportingController: this.controller,
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
    return true;
  }

  /** Records the Event, logging instead of failing: an Event is a courtesy, never a reason to fail the work. */
  async tryRecord(event: TidepoolEvent, log: (message: string, fields: Record<string, unknown>) => void): Promise<void> {
    try {
      await this.record(event);
    } catch (error) {
      log('could not write an Event', { reason: event.reason, regarding: `${event.regarding.kind} ${event.regarding.namespace ?? ''}/${event.regarding.name}`, error: (error as Error).message });
    }
  }
}
