import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ipSetOf, poolAddresses } from './ipam/pool.ts';
import type { IPPool } from './k8s/types.ts';
import { isReclaimReason, type ReleaseReason } from './contract/release-reasons.ts';

function counter<L extends string>(registry: Registry, name: string, labelNames: readonly L[], help: string): Counter<L> {
  return new Counter({ name, help, labelNames, registers: [registry] });
}

function gauge<L extends string>(registry: Registry, name: string, labelNames: readonly L[], help: string): Gauge<L> {
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/** Tidepool's Prometheus metrics, served by the worker at /metrics. */
export class TidepoolMetrics {
  readonly registry = new Registry();
  readonly allocations = counter(this.registry, 'tidepool_allocations_total', ['pool', 'outcome'] as const,
    'Allocation attempts per pool, by outcome (allocated, existing, exhausted, unavailable).');
  readonly allocationFailures = counter(this.registry, 'tidepool_allocation_failures_total', ['type'] as const,
    'CNI ADDs that got no IP, by failure type (NoFreeIP, PoolSelection, PodNotFound, ...).');
  readonly allocationSeconds = new Histogram({
    name: 'tidepool_allocation_duration_seconds',
    help: 'Time the allocateIPs activity took, from reading the pod to the pool write.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly releases = counter(this.registry, 'tidepool_releases_total', ['reason'] as const,
    'IPs released, by reason (src/contract/release-reasons.ts): CNIDel, PodRecreated, EndpointNotWritten, or a reclaim reason (PodNotFound, TerminatingOnNotReadyNode, ...).');
  readonly reclaims = counter(this.registry, 'tidepool_reclaims_total', ['reason'] as const,
    'IPs reclaimed from pods that no longer needed them, by reason.');
  readonly conflictRetries = counter(this.registry, 'tidepool_pool_conflict_retries_total', ['pool'] as const,
    'Pool status writes retried after a 409 (someone else changed the pool).');
  readonly poolWrites = counter(this.registry, 'tidepool_pool_status_writes_total', ['pool'] as const,
    'Batches committed to a pool status (each one write serving one or more requests).');
  readonly sweepSeconds = new Histogram({
    name: 'tidepool_gc_sweep_duration_seconds',
    help: 'Time a GC sweep took to read and judge the cluster.',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly sweepCandidates = gauge(this.registry, 'tidepool_gc_sweep_candidates', ['reason'] as const,
    'IPs the last sweep judged leaked, by reason.');
  readonly rerecorded = counter(this.registry, 'tidepool_unrecorded_ips_recorded_total', ['pool', 'source'] as const,
    'IPs that live pods held with no record in their pool, recorded again: when a pool object appeared (source Reconciliation) or by a sweep (source Sweep).');
  readonly sweepUnrecorded = gauge(this.registry, 'tidepool_gc_sweep_unrecorded', ['pool'] as const,
    'IPs the last sweep found held by a live pod with no record in their pool, by pool.');
  readonly ipConflicts = gauge(this.registry, 'tidepool_ip_conflicts', ['pool'] as const,
    'IPs that two or more live pods hold at once, by pool, as the last sweep (or a pool reconciliation) found them. Never reclaimed automatically: alert on any.');

  /** Per-pool capacity, allocated and free, computed from `pools()` at every scrape. */
  watchPools(pools: () => readonly IPPool[]): void {
    const poolGauge = (name: string, help: string, value: (pool: IPPool) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const pool of pools()) {
            try {
              this.set({ pool: pool.metadata.name }, value(pool));
            } catch {
              // a pool whose spec cannot be parsed has no capacity to report
            }
          }
        },
      });
    const capacity = (pool: IPPool) => poolAddresses(pool.metadata.name, pool.spec).allocatable;
    poolGauge('tidepool_pool_capacity', 'Allocatable IPs of a pool (ips minus excludeIPs minus the gateway).', (p) => Number(capacity(p).size()));
    poolGauge('tidepool_pool_allocated', 'IPs a pool has allocated.', (p) => Object.keys(p.status?.allocatedIPs ?? {}).length);
    poolGauge('tidepool_pool_free', 'Allocatable IPs of a pool that are not allocated.', (p) => {
      const all = capacity(p);
      return Number(all.subtract(ipSetOf(all.family, Object.keys(p.status?.allocatedIPs ?? {}))).size());
    });
  }

  recordRelease(reason: ReleaseReason, count: number): void {
    if (count === 0) return;
    this.releases.inc({ reason }, count);
    if (isReclaimReason(reason)) this.reclaims.inc({ reason }, count);
  }
}

/** Serves the metrics at http://<host>:<port>/metrics. */
export async function serveMetrics(metrics: TidepoolMetrics, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
