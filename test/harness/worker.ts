import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { stack } from './cluster.ts';

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
