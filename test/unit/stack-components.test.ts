import { describe, expect, it } from 'vitest';
import { components, tidepoolComponents, workerMetricsPort } from '../../stack/components.ts';
import { stackConfig, stackPaths, temporalKind, workerCount } from '../../stack/config.ts';

const paths = stackPaths(stackConfig);

describe('the stack components', () => {
  it('run the dev server, or PostgreSQL and the real Temporal server, never both', () => {
    const names = (kind: 'dev' | 'server') => components(stackConfig, paths, kind).map((spec) => spec.name);
    expect(names('dev')).toEqual(['etcd', 'kube-apiserver', 'kube-controller-manager', 'temporal']);
    expect(names('server')).toEqual(['etcd', 'kube-apiserver', 'kube-controller-manager', 'postgres', 'temporal-server']);
    expect(components(stackConfig, paths, 'server', { address: '127.0.0.1:1', ui: '' }).map((spec) => spec.name)).not.toContain('temporal-server');
  });

  it('run N workers, each with its own name (so its own pid file and log) and metrics port', () => {
    const workers = tidepoolComponents({ ...stackConfig, workers: 3 }, paths).filter((spec) => spec.name.startsWith('tidepool-worker'));
    expect(workers.map((spec) => spec.name)).toEqual(['tidepool-worker', 'tidepool-worker-2', 'tidepool-worker-3']);
    const ports = workers.map((spec) => Number(spec.env?.TIDEPOOL_METRICS_PORT));
    expect(ports).toEqual([1, 2, 3].map((index) => workerMetricsPort(stackConfig, index)));
    expect(new Set(ports).size).toBe(3);
    expect(ports[0]).toBe(stackConfig.ports.workerMetrics);
  });

  it('read TIDEPOOL_TEMPORAL and the worker count strictly', () => {
    expect(temporalKind(undefined)).toBeUndefined();
    expect(temporalKind('testcontainers')).toBeUndefined();
    expect(temporalKind('server')).toBe('server');
    expect(() => temporalKind('postgres')).toThrow(/none of dev, server/);
    expect(workerCount(undefined)).toBe(1);
    expect(workerCount('2')).toBe(2);
    expect(() => workerCount('0')).toThrow(/not a worker count/);
    expect(() => workerCount('two', '--workers')).toThrow(/--workers=two/);
  });
});
