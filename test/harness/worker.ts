import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { gcScheduleId } from '../../src/gc/schedule.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { createNamespace, kubeConfig, stack, waitFor } from './cluster.ts';

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

/**
 * Resolves once `child` has exited, also when it did so before this was called: a SIGKILLed child can be reaped
 * while the caller awaits something else, and its 'exit' event is then gone.
 */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** The JSON log lines of a worker spawned by spawnWorker. */
export function workerLogLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

export interface WorkerProcessFixture {
  namespace: { name: string; remove: () => Promise<void> };
  pool: string;
  client: Client;
}

/**
 * For a test file that runs worker processes on its own task queue: a suite namespace, an IPPool `name` of
 * `ips` in `subnet`, and a Temporal client, made before the file's tests and removed after them with the
 * task queue's GC Schedule.
 */
export function workerProcessFixture(name: string, subnet: string, ips: string, taskQueue: string): WorkerProcessFixture {
  const fixture = { pool: name } as WorkerProcessFixture;
  const pools = () => new TidepoolClient(kubeConfig());
  let connection: Connection | undefined;
  beforeAll(async () => {
    fixture.namespace = await createNamespace(name.split('-')[0]!);
    await pools().createPool(name, { subnet, ips: [ips] });
    connection = await Connection.connect({ address: stack().temporalAddress });
    fixture.client = new Client({ connection });
  });
  afterAll(async () => {
    await fixture.client?.schedule.getHandle(gcScheduleId(taskQueue)).delete().catch(() => undefined);
    await connection?.close();
    await fixture.namespace?.remove();
    const left = await pools().getPool(name);
    if (left) await pools().replacePoolStatus({ ...left, status: {} }).catch(() => undefined);
    await pools().deletePool(name).catch(() => undefined);
  });
  return fixture;
}
