import { describe, expect, it } from 'vitest';
import type { IPPool } from '../../src/k8s/types.ts';
import { releaseReasonLabel, TidepoolMetrics } from '../../src/metrics.ts';

describe('metrics', () => {
  it.each([
    ['CNI DEL', 'CNIDel'],
    ['PodNotFound', 'PodNotFound'],
    ['TerminatingOnNotReadyNode', 'TerminatingOnNotReadyNode'],
    ['pod ns/web-0 was re-created with UID 1234', 'PodReplaced'],
    ['something else entirely', 'Other'],
  ])('labels the release reason %j as %s', (reason, label) => {
    expect(releaseReasonLabel(reason)).toBe(label);
  });

  it('counts releases, and reclaims apart from CNI DELs, re-created pods and rolled-back ADDs', async () => {
    const metrics = new TidepoolMetrics();
    metrics.recordRelease('CNI DEL', 2);
    metrics.recordRelease('PodNotFound', 3);
    metrics.recordRelease('pod a/b was re-created with UID c', 1);
    metrics.recordRelease('PodEndpoint not written', 1);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tidepool_releases_total{reason="Other"} 1');
    expect(text).not.toContain('tidepool_reclaims_total{reason="Other"}');
    expect(text).toContain('tidepool_releases_total{reason="CNIDel"} 2');
    expect(text).toContain('tidepool_releases_total{reason="PodNotFound"} 3');
    expect(text).toContain('tidepool_reclaims_total{reason="PodNotFound"} 3');
    expect(text).not.toContain('tidepool_reclaims_total{reason="CNIDel"}');
    expect(text).not.toContain('tidepool_reclaims_total{reason="PodReplaced"}');
  });

  it('a sweep’s PodReplaced verdict is a reclaim, unlike the lifecycle’s release of a re-created pod', async () => {
    const metrics = new TidepoolMetrics();
    metrics.recordRelease('pod a/b was re-created with UID c', 1);
    metrics.recordRelease('PodReplaced', 2);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tidepool_releases_total{reason="PodReplaced"} 3');
    expect(text).toContain('tidepool_reclaims_total{reason="PodReplaced"} 2');
  });

  it('reports every pool’s capacity, allocated and free IPs at scrape time', async () => {
    const metrics = new TidepoolMetrics();
    const pool: IPPool = {
      apiVersion: 'tidepool.dev/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'a' },
      spec: { subnet: '10.6.0.0/24', ips: ['10.6.0.1-10.6.0.10'], excludeIPs: ['10.6.0.10'], gateway: '10.6.0.1' },
      status: { allocatedIPs: { '10.6.0.2': { pod: 'ns/p', podUID: 'u' } } },
    };
    const broken: IPPool = { ...pool, metadata: { name: 'broken' }, spec: { subnet: 'nonsense', ips: [] } };
    metrics.watchPools(() => [pool, broken]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tidepool_pool_capacity{pool="a"} 8');
    expect(text).toContain('tidepool_pool_allocated{pool="a"} 1');
    expect(text).toContain('tidepool_pool_free{pool="a"} 7');
    expect(text).not.toContain('tidepool_pool_capacity{pool="broken"}');
    expect(text).not.toContain('tidepool_pool_free{pool="broken"}');
  });
});
