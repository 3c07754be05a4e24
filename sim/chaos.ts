// A chaos run (docs/reliability.md): its options and result, and runChaos, which runs the steps in sim/chaos/.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { parseDuration } from '../src/config.ts';
import { NODE_DEFAULTS } from '../src/contract/defaults.ts';
import { planFaults, seededRandom, type FaultKind, type PlannedFault } from './faults.ts';
import type { Violation } from './invariants.ts';
import type { KubeletStats } from './kubelet.ts';
import { stackConfig, type StackConfig } from '../stack/config.ts';
import { startComponent, status, stopComponent } from '../stack/stack.ts';
import { awaitEndState, startSampling, type EndState, type SampleCounts } from './chaos/check.ts';
import { startChurn, type ChurnCounts } from './chaos/churn.ts';
import { lastFaultEndS, startFaults, type ChaosProcess, type ChaosProcessControl, type InjectedFault } from './chaos/inject.ts';
import { workerName } from '../stack/components.ts';
import { chaosNames, setUpWorld, tearDownWorld, type ChaosWorld } from './chaos/world.ts';

export type { ChaosProcess, ChaosProcessControl, InjectedFault } from './chaos/inject.ts';

export interface ChaosOptions {
  kubeConfig: KubeConfig;
  temporal: { address: string; namespace: string };
  cni: { binary: string; agentSocket: string; spoolDir: string };
  processes: ChaosProcessControl;
  /** Which Temporal the stack runs, and how many workers: a worker-kill kills one of them. */
  temporalKind: 'dev' | 'server';
  workers: number;
  durationMs: number;
  /** Pods created per second; once `pods` live, as many deleted. */
  rate: number;
  /** The steady population of live pods. */
  pods: number;
  nodes: number;
  poolSize: number;
  seed: number;
  faults: readonly FaultKind[];
  meanFaultGapMs: number;
  powerOffMs: number;
  /** How long a window of dropped DELs or killed ADDs lasts, and the share of DELs dropped or ADDs killed in it. */
  faultWindowMs: number;
  dropDelShare: number;
  killAddShare: number;
  sampleMs: number;
  /** How long a record may outlive its pod during the run before it counts as leaked. */
  reclaimWindowMs: number;
  /** How long the end state may take to satisfy every invariant once churn and faults have stopped. */
  settleMs: number;
  log: (line: string) => void;
}

export interface ChaosResult {
  seed: number;
  durationS: number;
  pool: string;
  namespace: string;
  podsCreated: number;
  podsDeleted: number;
  /** Pod creations and deletions the API server refused or could not take (it was down, say); retried later. */
  churnErrors: number;
  faultsByKind: Record<string, number>;
  faults: InjectedFault[];
  samples: number;
  /** Samples that could not be read (kube-apiserver down). */
  failedSamples: number;
  violations: Violation[];
  converged: boolean;
  /** Seconds from the end of the last fault, and from the end of churn, to an end state that met every invariant. */
  convergeAfterLastFaultS?: number;
  convergeAfterChurnS?: number;
  finalPods: number;
  finalRecords: number;
  kubelet: Omit<KubeletStats, 'addMs' | 'errors' | 'apiErrors' | 'addFailureLog'> & { addErrors: Record<string, number> };
  /**
   * ADDs that failed while a worker was down, or within an ADD's deadline of its return (an ADD that began
   * meanwhile), leaving out those the cni-kill fault killed: what a replica's crash cost the runtime.
   */
  addsFailedWhileWorkerDown: number;
  /** Each worker's resident memory every 30 s and when churn stopped (a killed worker's successor has a new pid). */
  workerRss: WorkerRssSample[];
}

export interface WorkerRssSample {
  worker: string;
  pid: number;
  atS: number;
  rssMiB: number;
}

/** A process's resident set (VmRSS), in MiB; undefined once it is gone. */
function residentMiB(pid: number): number | undefined {
  try {
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? undefined : Math.round(Number(kib) / 102.4) / 10;
  } catch {
    return undefined;
  }
}

/**
 * The worker's reclaim settings for a chaos run (docs/reclaim.md): sweeps every 10 s (the shortest allowed)
 * and a minimum record age of 5 s, so that a leak is caught within seconds rather than minutes.
 */
/** The agent's ADD deadline: an ADD that began while a worker was down may fail this long after its return. */
const ADD_DEADLINE_MS = parseDuration(NODE_DEFAULTS.agentAddTimeout, 'agentAddTimeout');

export const CHAOS_WORKER_ENV: Record<string, string> = {
  TIDEPOOL_GC_SWEEP_INTERVAL: '10s',
  TIDEPOOL_GC_MIN_RECORD_AGE: '5s',
  TIDEPOOL_GC_ADDITIONAL_GRACE_DELAY: '0s',
};

/** The local stack's processes, stopped and started through its pid files; the workers with CHAOS_WORKER_ENV. */
export function stackProcessControl(log: (line: string) => void, config: StackConfig = stackConfig): ChaosProcessControl {
  return {
    stop: (name, signal) => stopComponent(name, signal, config),
    start: (name) => startComponent(name, config, (line) => log(`[stack] ${line}`), { workerEnv: CHAOS_WORKER_ENV }),
    pid: (name) => status(config).find((component) => component.name === name)?.pid,
  };
}

/**
 * Steady churn on simulated nodes under injected faults, with the invariants sampled throughout and checked
 * in full once churn and faults have stopped. Creates its own namespace, nodes and pool, and removes them.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const { log } = options;
  const names = chaosNames(options.nodes);
  const plan = faultPlan(options, names.nodes);
  log(`plan: ${plan.map((fault) => `${fault.kind}${fault.node ? `(${fault.node})` : ''}@${Math.round(fault.atMs / 1000)}s`).join(', ') || 'no faults'}`);
  const world = await setUpWorld(options.kubeConfig, names, { poolSize: options.poolSize, cni: options.cni, random: seededRandom(options.seed + 2) });

  const started = Date.now();
  const seconds = (at: number) => Math.round((at - started) / 100) / 10;
  const stopping = new AbortController();
  const targets = { processes: options.processes, temporal: options.temporalKind, kubelet: world.kubelet, dropDelShare: options.dropDelShare, killAddShare: options.killAddShare, log };
  const faults = startFaults(plan, started, targets, seconds);
  const churn = startChurn(world, options, seededRandom(options.seed + 1), stopping.signal);
  const sampling = startSampling(world, options, seconds, log, stopping.signal);
  const workerNames = Array.from({ length: options.workers }, (_, index) => workerName(index + 1) as ChaosProcess);
  const workerRss: WorkerRssSample[] = [];
  const sampleRss = () => {
    for (const name of workerNames) {
      const pid = options.processes.pid(name);
      const rssMiB = pid === undefined ? undefined : residentMiB(pid);
      if (pid !== undefined && rssMiB !== undefined) workerRss.push({ worker: name, pid, atS: seconds(Date.now()), rssMiB });
    }
  };
  sampleRss();
  const progress = setInterval(() => {
    sampleRss();
    const { podsCreated, podsDeleted, live } = churn.counts;
    log(`${seconds(Date.now())} s: ${podsCreated} created, ${podsDeleted} deleted, ${live.length} live, ${faults.injected.length}/${plan.length} faults, ${sampling.counts.violations.length} violations, kubelet ${JSON.stringify(world.kubelet.diagnose())}`);
  }, 30_000);
  let churnEnded: number;
  let end: EndState;
  try {
    await sleep(options.durationMs);
    stopping.abort();
    await churn.done;
    churnEnded = Date.now();
    await faults.allOver();
    await sampling.done;
    sampleRss();
    log(`churn stopped at ${seconds(Date.now())} s, last fault over at ${lastFaultEndS(faults.injected)} s; waiting for the end state`);
    end = await awaitEndState(world, options.temporal, options.settleMs, log);
  } finally {
    stopping.abort();
    clearInterval(progress);
    await tearDownWorld(world, log).catch((error: unknown) => log(`cleanup: ${(error as Error).message}`));
  }
  return { ...chaosResult(options, world, { started, churnEnded, churn: churn.counts, sampling: sampling.counts, injected: faults.injected, end }), workerRss };
}

function faultPlan(options: ChaosOptions, nodes: string[]): PlannedFault[] {
  return planFaults(
    {
      durationMs: options.durationMs,
      kinds: options.faults,
      meanGapMs: options.meanFaultGapMs,
      quietStartMs: Math.min(30_000, options.durationMs / 6),
      quietEndMs: Math.min(30_000, options.durationMs / 10),
      nodes,
      powerOffMs: options.powerOffMs,
      windowMs: options.faultWindowMs,
      workers: options.workers,
    },
    seededRandom(options.seed),
  );
}

/** What the run saw, once its world is torn down: the counts, the faults, the violations and the kubelet's figures. */
function chaosResult(
  options: ChaosOptions,
  world: ChaosWorld,
  run: { started: number; churnEnded: number; churn: ChurnCounts; sampling: SampleCounts; injected: InjectedFault[]; end: EndState },
): Omit<ChaosResult, 'workerRss'> {
  const { end, injected } = run;
  const lastFaultEnd = run.started + 1000 * lastFaultEndS(injected);
  const { adds, addFailures, dels, delFailures, droppedDels, killedAdds, errors, addFailureLog } = world.kubelet.stats;
  const workerDown = injected
    .filter((fault) => fault.kind === 'worker-kill')
    .map((fault) => [run.started + 1000 * fault.startedS, run.started + 1000 * (fault.endedS ?? fault.startedS) + ADD_DEADLINE_MS] as const);
  const addsFailedWhileWorkerDown = addFailureLog.filter((failure) => !failure.killed && workerDown.some(([from, to]) => failure.at >= from && failure.at <= to)).length;
  const faultsByKind: Record<string, number> = Object.fromEntries(options.faults.map((kind) => [kind, 0]));
  for (const fault of injected) faultsByKind[fault.kind] = (faultsByKind[fault.kind] ?? 0) + 1;
  return {
    seed: options.seed,
    durationS: options.durationMs / 1000,
    pool: world.pool,
    namespace: world.namespace,
    podsCreated: run.churn.podsCreated,
    podsDeleted: run.churn.podsDeleted,
    churnErrors: run.churn.churnErrors,
    faultsByKind,
    faults: injected,
    samples: run.sampling.samples,
    failedSamples: run.sampling.failedSamples,
    violations: [...run.sampling.violations, ...end.violations],
    converged: end.converged,
    ...(end.convergedAt !== undefined
      ? { convergeAfterLastFaultS: Math.round((end.convergedAt - lastFaultEnd) / 100) / 10, convergeAfterChurnS: Math.round((end.convergedAt - run.churnEnded) / 100) / 10 }
      : {}),
    finalPods: end.finalFacts?.pods.filter((pod) => !pod.gone).length ?? 0,
    finalRecords: end.finalFacts?.records.length ?? 0,
    kubelet: { adds, addFailures, dels, delFailures, droppedDels, killedAdds, addErrors: errors },
    addsFailedWhileWorkerDown,
  };
}
