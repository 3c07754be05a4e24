import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type LogEntry } from '@temporalio/worker';
import { loadWorkerConfig } from '../config.ts';
import { writeLogLine, type Log } from '../log.ts';
import { createController } from '../controller/controller.ts';
import { loadReclaimSettings } from '../gc/config.ts';
import { ensureGcSchedule } from '../gc/schedule.ts';
import { loadKubeConfig } from '../k8s/kubeconfig.ts';
import { electLeader } from '../k8s/lease.ts';
import { serveMetrics } from '../metrics.ts';
import { createTidepoolWorker } from './worker.ts';

function jsonLine({ level, message, meta, timestampNanos }: LogEntry): void {
  writeLogLine(level, message, meta, new Date(Number(timestampNanos / 1_000_000n)));
}

/** The worker process: the workflows and activities, the controller (on the replica that holds its Lease), and the tidepool-gc Schedule. */
async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const settings = loadReclaimSettings();
  Runtime.install({ logger: new DefaultLogger('INFO', jsonLine) });
  const logger = Runtime.instance().logger;
  const kubeConfig = loadKubeConfig(config.kubeconfig);
  const unreachable = (error: unknown) =>
    new Error(`cannot reach Temporal at ${config.temporalAddress}: ${(error as Error).message}`, { cause: error });
  const connection = await NativeConnection.connect(config.temporalConnection).catch((error: unknown) => {
    throw unreachable(error);
  });
  const clientConnection = await Connection.connect(config.temporalConnection).catch((error: unknown) => {
    throw unreachable(error);
  });
  try {
    const client = new Client({ connection: clientConnection, namespace: config.temporalNamespace });
    const { run, metrics } = await createTidepoolWorker({
      connection,
      namespace: config.temporalNamespace,
      kubeConfig,
      settings,
      taskQueue: config.taskQueue,
      shutdownGraceMs: config.shutdownGraceMs,
      onCacheError: (error) => logger.warn('watch failed; restarting it', { error: error.message }),
      log: (level, message, fields) => logger[level](message, fields),
    });
    const metricsServer = await serveMetrics(metrics, config.metricsHost, config.metricsPort);
    const log: Log = (level, message, fields) => logger[level](message, fields);
    // Of all replicas, only the Lease's holder runs the controller: one signal per pod event, one finalizer write.
    const election = electLeader({ kubeConfig, ...config.controllerLease, log }, async () => {
      const controller = createController({ kubeConfig, client, taskQueue: config.taskQueue, gc: settings.gc, namespaceSelector: settings.namespaceSelector, log });
      await controller.start();
      return controller;
    });
    if (settings.gc.enabled) {
      const schedule = await ensureGcSchedule(client, { intervalMs: settings.sweepIntervalMs, taskQueue: config.taskQueue });
      // One sweep at start, through the Schedule so that it never overlaps a scheduled one.
      await schedule.trigger('SKIP');
    }
    logger.info('tidepool worker started', {
      temporal: config.temporalAddress,
      namespace: config.temporalNamespace,
      taskQueue: config.taskQueue,
      cluster: kubeConfig.getCurrentCluster()?.server,
      gc: settings,
      controllerLease: config.controllerLease,
      metrics: `http://${config.metricsHost}:${config.metricsPort}/metrics`,
    });
    // The Runtime shuts the worker down on SIGINT/SIGTERM; run() resolves once in-flight work has finished.
    await run();
    await election.stop();
    metricsServer.close();
  } finally {
    await clientConnection.close();
    await connection.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'ERROR', msg: (error as Error).message })}\n`);
  process.exit(1);
});
