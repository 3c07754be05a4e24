import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCni } from '../../scripts/build-cni.ts';
import { CHAOS_WORKER_ENV, runChaos, stackProcessControl } from '../../sim/chaos.ts';
import { faultKindsFor } from '../../sim/faults.ts';
import { TASK_QUEUE } from '../../src/temporal/names.ts';
import { stackPaths } from '../../stack/config.ts';
import { startComponent, status, stopComponent, up } from '../../stack/stack.ts';
import { kubeConfig, stack } from '../harness/cluster.ts';

const log = (line: string) => console.log(`[chaos] ${line}`);
let wasRunning: Set<string>;

// The short chaos run kills and restarts the stack's own processes, so it needs the stack's dev server.
describe.skipIf(process.env.TIDEPOOL_TEMPORAL === 'testcontainers')('a short chaos run', () => {
  beforeAll(async () => {
    wasRunning = new Set(status().filter((component) => component.pid !== undefined).map((component) => component.name));
    await stopComponent('tidepool-worker', 'SIGTERM');
    await up(undefined, log, { tidepool: true, workerEnv: CHAOS_WORKER_ENV });
  });

  afterAll(async () => {
    // Leave the stack's Tidepool processes as they were: running with their own settings, or not at all.
    await stopComponent('tidepool-worker', 'SIGTERM');
    if (wasRunning.has('tidepool-worker')) await startComponent('tidepool-worker');
    if (!wasRunning.has('tidepool-agent')) await stopComponent('tidepool-agent', 'SIGTERM');
    if (!wasRunning.has('tidepool-webhook')) await stopComponent('tidepool-webhook', 'SIGTERM');
  });

  it('restarts a SIGKILLed worker and counts it ready only once the new process polls the task queue', async () => {
    const before = status().find((component) => component.name === 'tidepool-worker')?.pid;
    expect(await stopComponent('tidepool-worker', 'SIGKILL')).toBe(true);
    await startComponent('tidepool-worker', undefined, log, { workerEnv: CHAOS_WORKER_ENV });
    const after = status().find((component) => component.name === 'tidepool-worker')?.pid;
    expect(after).not.toBe(before);
    // Temporal still lists the killed process's poller: only the new identity shows the new process is ready.
    const connection = await Connection.connect({ address: stack().temporalAddress });
    try {
      const queue = await connection.workflowService.describeTaskQueue({ namespace: stack().temporalNamespace, taskQueue: { name: TASK_QUEUE } });
      expect((queue.pollers ?? []).map((poller) => poller.identity?.split('@')[0])).toContain(String(after));
    } finally {
      await connection.close();
    }
  });

  it('churns pods through every fault kind with no invariant violated, and converges', async () => {
    const temporalKind = stack().temporal === 'server' ? 'server' : 'dev';
    const kinds = faultKindsFor(temporalKind);
    const result = await runChaos({
      kubeConfig: kubeConfig(),
      temporal: { address: stack().temporalAddress, namespace: stack().temporalNamespace },
      cni: { binary: await buildCni(), agentSocket: stackPaths().agentSocket, spoolDir: stackPaths().cniSpool },
      processes: stackProcessControl(log),
      durationMs: 100_000,
      rate: 1,
      pods: 10,
      nodes: 2,
      poolSize: 20,
      seed: 42,
      faults: kinds,
      temporalKind,
      workers: 1,
      meanFaultGapMs: 15_000,
      powerOffMs: 30_000,
      faultWindowMs: 15_000,
      dropDelShare: 1,
      killAddShare: 1,
      sampleMs: 3000,
      reclaimWindowMs: 120_000,
      settleMs: 120_000,
      log,
    });
    const details = JSON.stringify({ violations: result.violations, faults: result.faults, kubelet: result.kubelet }, null, 1);
    expect(result.violations, details).toEqual([]);
    expect(result.converged, details).toBe(true);
    expect(result.faults.filter((fault) => fault.error), details).toEqual([]);
    expect(Object.keys(result.faultsByKind).sort()).toEqual([...kinds].sort());
    expect(Object.values(result.faultsByKind).every((count) => count >= 1), details).toBe(true);
    // The worker and the agent reconnect by themselves: nothing restarts them after a Temporal or API server restart.
    const restarts = result.faults.filter((fault) => fault.survived !== undefined);
    expect(restarts.map((fault) => [fault.kind, fault.survived])).toEqual(restarts.map((fault) => [fault.kind, { worker: true, agent: true }]));
    expect(result.podsDeleted).toBeGreaterThan(0);
    expect(result.finalPods).toBe(10);
    expect(result.finalRecords).toBe(10);
  }, 600_000);
});
