import { describe, expect, it } from 'vitest';
import type { IPPool } from '../../src/k8s/types.ts';
import { RELEASE_REASONS, releaseReasonText } from '../../src/contract/release-reasons.ts';
import { TidepoolMetrics } from '../../src/metrics.ts';

describe('metrics', () => {
  it('counts every release by its typed reason, and reclaims apart from CNI DELs, re-created pods and rolled-back ADDs', async () => {
    const metrics = new TidepoolMetrics();
    metrics.recordRelease('CNIDel', 2);
    metrics.recordRelease('PodNotFound', 3);
    metrics.recordRelease('PodRecreated', 1);
    metrics.recordRelease('EndpointNotWritten', 1);
    metrics.recordRelease('PodReplaced', 2);
    const text = await metrics.registry.metrics();
    for (const [reason, count] of [['CNIDel', 2], ['PodNotFound', 3], ['PodRecreated', 1], ['EndpointNotWritten', 1], ['PodReplaced', 2]] as const) {
      expect(text).toContain(`tidepool_releases_total{reason="${reason}"} ${count}`);
    }
    expect(text).toContain('tidepool_reclaims_total{reason="PodNotFound"} 3');
    expect(text).toContain('tidepool_reclaims_total{reason="PodReplaced"} 2');
    for (const reason of ['CNIDel', 'PodRecreated', 'EndpointNotWritten']) expect(text).not.toContain(`tidepool_reclaims_total{reason="${reason}"}`);
  });

  it('has a sentence for every release reason, naming the reason', () => {
    for (const reason of RELEASE_REASONS) expect(releaseReasonText(reason)).toMatch(new RegExp(`^[a-z].* \\(${reason}\\)$`));
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
