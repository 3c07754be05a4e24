import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ipSetOf, poolAddresses } from './ipam/pool.ts';
import type { IPPool } from './k8s/types.ts';
import { isReclaimReason, type ReleaseReason } from './contract/release-reasons.ts';


/** Tidepool's Prometheus metrics, served by the worker at /metrics. */
export class TidepoolMetrics {
  readonly registry = new Registry();
  readonly allocations = new Counter({
    name: 'tidepool_allocations_total',
    help: 'Allocation attempts per pool, by outcome (allocated, existing, exhausted, unavailable).',
    labelNames: ['pool', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly allocationFailures = new Counter({
    name: 'tidepool_allocation_failures_total',
    help: 'CNI ADDs that got no IP, by failure type (NoFreeIP, PoolSelection, PodNotFound, ...).',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly allocationSeconds = new Histogram({
    name: 'tidepool_allocation_duration_seconds',
    help: 'Time the allocateIPs activity took, from reading the pod to the pool write.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly releases = new Counter({
    name: 'tidepool_releases_total',
    help: 'IPs released, by reason (src/contract/release-reasons.ts): CNIDel, PodRecreated, EndpointNotWritten, or a reclaim reason (PodNotFound, TerminatingOnNotReadyNode, ...).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly reclaims = new Counter({
    name: 'tidepool_reclaims_total',
    help: 'IPs reclaimed from pods that no longer needed them, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly conflictRetries = new Counter({
    name: 'tidepool_pool_conflict_retries_total',
    help: 'Pool status writes retried after a 409 (someone else changed the pool).',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });
  readonly poolWrites = new Counter({
    name: 'tidepool_pool_status_writes_total',
    help: 'Batches committed to a pool status (each one write serving one or more requests).',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });
  readonly sweepSeconds = new Histogram({
    name: 'tidepool_gc_sweep_duration_seconds',
    help: 'Time a GC sweep took to read and judge the cluster.',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly sweepCandidates = new Gauge({
    name: 'tidepool_gc_sweep_candidates',
    help: 'IPs the last sweep judged leaked, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly rerecorded = new Counter({
    name: 'tidepool_unrecorded_ips_recorded_total',
    help: 'IPs that live pods held with no record in their pool, recorded again: when a pool object appeared (source Reconciliation) or by a sweep (source Sweep).',
    labelNames: ['pool', 'source'] as const,
    registers: [this.registry],
  });
  readonly sweepUnrecorded = new Gauge({
    name: 'tidepool_gc_sweep_unrecorded',
    help: 'IPs the last sweep found held by a live pod with no record in their pool, by pool.',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });
  readonly ipConflicts = new Gauge({
    name: 'tidepool_ip_conflicts',
    help: 'IPs that two or more live pods hold at once, by pool, as the last sweep (or a pool reconciliation) found them. Never reclaimed automatically: alert on any.',
    labelNames: ['pool'] as const,
    registers: [this.registry],
  });

  /** Per-pool capacity, allocated and free, computed from `pools()` at every scrape. */
  watchPools(pools: () => readonly IPPool[]): void {
    const gauge = (name: string, help: string, value: (pool: IPPool) => number) =>
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
    gauge('tidepool_pool_capacity', 'Allocatable IPs of a pool (ips minus excludeIPs minus the gateway).', (p) => Number(capacity(p).size()));
    gauge('tidepool_pool_allocated', 'IPs a pool has allocated.', (p) => Object.keys(p.status?.allocatedIPs ?? {}).length);
    gauge('tidepool_pool_free', 'Allocatable IPs of a pool that are not allocated.', (p) => {
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
