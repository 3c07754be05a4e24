import { DefaultLogger, NativeConnection, Runtime, type LogEntry } from '@temporalio/worker';
import { loadWorkerConfig } from '../src/config.ts';
import { loadReclaimSettings } from '../src/gc/config.ts';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { createTidepoolWorker } from './worker.ts';

function jsonLine(entry: LogEntry): void {
  const { level, message, meta, timestampNanos } = entry;
  const time = new Date(Number(timestampNanos / 1_000_000n)).toISOString();
  process.stdout.write(`${JSON.stringify({ time, level, msg: message, ...meta })}\n`);
}

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const settings = loadReclaimSettings();
  Runtime.install({ logger: new DefaultLogger('INFO', jsonLine) });
  const kubeConfig = loadKubeConfig(config.kubeconfig);
  const connection = await NativeConnection.connect({ address: config.temporalAddress }).catch((error: unknown) => {
    throw new Error(`cannot reach Temporal at ${config.temporalAddress}: ${(error as Error).message}`, { cause: error });
  });
  try {
    const { run } = await createTidepoolWorker({
      connection,
      namespace: config.temporalNamespace,
      kubeConfig,
      settings,
      shutdownGraceMs: config.shutdownGraceMs,
      onCacheError: (error) => Runtime.instance().logger.warn('watch failed; restarting it', { error: error.message }),
    });
    Runtime.instance().logger.info('tidepool worker started', {
      temporal: config.temporalAddress,
      namespace: config.temporalNamespace,
      cluster: kubeConfig.getCurrentCluster()?.server,
    });
    // The Runtime shuts the worker down on SIGINT/SIGTERM; run() resolves once in-flight work has finished.
    await run();
  } finally {
    await connection.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'ERROR', msg: (error as Error).message })}\n`);
  process.exit(1);
});
