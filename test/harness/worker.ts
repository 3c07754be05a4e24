import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { stack, waitFor } from './cluster.ts';

/**
 * Runs a worker in this process against the stack's Temporal server while `fn` runs, then shuts it down.
 */
export async function withWorker<T>(
  options: Pick<WorkerOptions, 'taskQueue' | 'workflowsPath' | 'activities'>,
  fn: () => Promise<T>,
): Promise<T> {
  const info = stack();
  const connection = await NativeConnection.connect({ address: info.temporalAddress });
  try {
    const worker = await Worker.create({ connection, namespace: info.temporalNamespace, ...options });
    return await worker.runUntil(fn);
  } finally {
    await connection.close();
  }
}

/**
 * The real worker entry (src/worker/main.ts) as its own process on `taskQueue`, logging JSON lines to `log`;
 * resolves once it logged its start.
 */
export async function spawnWorker(log: string, taskQueue: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [path.resolve(import.meta.dirname, '../../src/worker/main.ts')], {
    env: {
      ...process.env,
      KUBECONFIG: stack().kubeconfig,
      TEMPORAL_ADDRESS: stack().temporalAddress,
      TIDEPOOL_TASK_QUEUE: taskQueue,
      TIDEPOOL_METRICS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  await waitFor(`the worker to start (log ${log})`, async () => readFileSync(log, 'utf8').includes('"tidepool worker started"'), 90_000);
  return child;
}

/** The JSON log lines of a worker spawned by spawnWorker. */
export function workerLogLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}
