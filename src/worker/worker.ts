import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import { createSweepActivities } from '../activities/sweep.ts';
import { createPoolDeletionActivities } from '../activities/pool-deletion.ts';
import { createRuntimeGcActivities } from '../activities/runtime-gc.ts';
import { apiHolderSource } from '../store/holders.ts';
import { PoolWriter, type Reconciliation } from '../store/pool-writer.ts';
import type { ReclaimSettings } from '../gc/config.ts';
import { ClusterCache } from '../k8s/cache.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { TidepoolMetrics } from '../metrics.ts';
import { TASK_QUEUE } from '../temporal/names.ts';
import type { Log } from '../log.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface TidepoolWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  kubeConfig: KubeConfig;
  settings: ReclaimSettings;
  shutdownGraceMs: number;
  taskQueue?: string;
  onCacheError?: (error: Error) => void;
  log?: Log;
}

export interface TidepoolWorker {
  worker: Worker;
  writer: PoolWriter;
  metrics: TidepoolMetrics;
  /** Runs the worker until it is shut down (SIGTERM, or worker.shutdown()), then stops the caches. */
  run: () => Promise<void>;
}

/** The Tidepool worker: the lifecycle workflows and their activities on task queue `tidepool`. */
export async function createTidepoolWorker(options: TidepoolWorkerOptions): Promise<TidepoolWorker> {
  const metrics = new TidepoolMetrics();
  const log = options.log ?? (() => {});
  const reconciled = (pool: string, reconciliation: Reconciliation) => {
    metrics.rerecorded.inc({ pool, source: 'Reconciliation' }, reconciliation.recorded.length);
    metrics.ipConflicts.set({ pool }, reconciliation.conflicts.length);
    log('info', 'pool reconciled with the IPs live pods hold before serving allocations', {
      pool,
      poolUID: reconciliation.poolUID,
      recorded: reconciliation.recorded.map((h) => `${h.ip} (${h.pod}, from ${h.source})`),
    });
    for (const conflict of reconciliation.conflicts) {
      log('error', 'one IP is held by more than one live pod', { pool, ip: conflict.ip, holders: conflict.holders.map((h) => `${h.pod} (${h.podUID})`) });
    }
  };
  const cache = new ClusterCache(options.kubeConfig, options.onCacheError);
  await cache.start();
  const writer = new PoolWriter({
    client: new TidepoolClient(options.kubeConfig),
    holders: apiHolderSource(options.kubeConfig),
    cache,
    cooldownMs: options.settings.reuseCooldownMs,
    writeSpacing: options.settings.poolWriteSpacing,
    onBatch: (batch) => {
      metrics.poolWrites.inc({ pool: batch.pool });
      if (batch.conflicts > 0) metrics.conflictRetries.inc({ pool: batch.pool }, batch.conflicts);
      if (batch.reconciliation) reconciled(batch.pool, batch.reconciliation);
    },
  });
  const taskQueue = options.taskQueue ?? TASK_QUEUE;
  metrics.watchPools(() => cache.pools());
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: {
      ...createActivities({ kubeConfig: options.kubeConfig, store: writer, cache, gc: options.settings.gc, metrics }),
      ...createSweepActivities({ kubeConfig: options.kubeConfig, gc: options.settings.gc, namespaceSelector: options.settings.namespaceSelector, taskQueue, metrics, writer }),
      ...createPoolDeletionActivities({ kubeConfig: options.kubeConfig }),
      ...createRuntimeGcActivities({ kubeConfig: options.kubeConfig, gc: options.settings.gc, taskQueue }),
    },
    // In-flight allocations finish before a rolling update stops the worker.
    shutdownGraceTime: options.shutdownGraceMs,
    maxConcurrentLocalActivityExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 100,
    // A lifecycle's next task waits this long on the sticky queue of the worker that ran its last one before
    // any worker may take it (replaying its short history). The default, 10 s, is longer than a DEL's deadline
    // (8 s): with two replicas, a SIGKILLed one's lifecycles would answer no DEL until then.
    stickyQueueScheduleToStartTimeout: '3s',
  });
  const run = async () => {
    try {
      await worker.run();
    } finally {
      await cache.stop();
    }
  };
  return { worker, writer, metrics, run };
}
