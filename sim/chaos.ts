// A chaos run (docs/reliability.md): its options and result, and runChaos, which runs the steps in sim/chaos/.
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { planFaults, seededRandom, type FaultKind, type PlannedFault } from './faults.ts';
import type { Violation } from './invariants.ts';
import type { KubeletStats } from './kubelet.ts';
import { startComponent, status, stopComponent } from '../stack/stack.ts';
import { awaitEndState, startSampling, type EndState, type SampleCounts } from './chaos/check.ts';
import { startChurn, type ChurnCounts } from './chaos/churn.ts';
import { lastFaultEndS, startFaults, type ChaosProcessControl, type InjectedFault } from './chaos/inject.ts';
import { chaosNames, setUpWorld, tearDownWorld, type ChaosWorld } from './chaos/world.ts';

export type { ChaosProcess, ChaosProcessControl, InjectedFault } from './chaos/inject.ts';

export interface ChaosOptions {
  kubeConfig: KubeConfig;
  temporal: { address: string; namespace: string };
  cni: { binary: string; agentSocket: string; spoolDir: string };
  processes: ChaosProcessControl;
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
  kubelet: Omit<KubeletStats, 'addMs' | 'errors' | 'apiErrors'> & { addErrors: Record<string, number> };
}

/**
 * The worker's reclaim settings for a chaos run (docs/reclaim.md): sweeps every 10 s (the shortest allowed)
 * and a minimum record age of 5 s, so that a leak is caught within seconds rather than minutes.
 */
export const CHAOS_WORKER_ENV: Record<string, string> = {
  TIDEPOOL_GC_SWEEP_INTERVAL: '10s',
  TIDEPOOL_GC_MIN_RECORD_AGE: '5s',
  TIDEPOOL_GC_ADDITIONAL_GRACE_DELAY: '0s',
};

/** The local stack's processes, stopped and started through its pid files; the worker with CHAOS_WORKER_ENV. */
export function stackProcessControl(log: (line: string) => void): ChaosProcessControl {
  return {
    stop: (name, signal) => stopComponent(name, signal),
    start: (name) => startComponent(name, undefined, (line) => log(`[stack] ${line}`), { workerEnv: CHAOS_WORKER_ENV }),
    pid: (name) => status().find((component) => component.name === name)?.pid,
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
  const targets = { processes: options.processes, kubelet: world.kubelet, dropDelShare: options.dropDelShare, killAddShare: options.killAddShare, log };
  const faults = startFaults(plan, started, targets, seconds);
  const churn = startChurn(world, options, seededRandom(options.seed + 1), stopping.signal);
  const sampling = startSampling(world, options, seconds, log, stopping.signal);
  const progress = setInterval(() => {
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
    log(`churn stopped at ${seconds(Date.now())} s, last fault over at ${lastFaultEndS(faults.injected)} s; waiting for the end state`);
    end = await awaitEndState(world, options.temporal, options.settleMs, log);
  } finally {
    stopping.abort();
    clearInterval(progress);
    await tearDownWorld(world, log).catch((error: unknown) => log(`cleanup: ${(error as Error).message}`));
  }
  return chaosResult(options, world, { started, churnEnded, churn: churn.counts, sampling: sampling.counts, injected: faults.injected, end });
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
    },
    seededRandom(options.seed),
  );
}

/** What the run saw, once its world is torn down: the counts, the faults, the violations and the kubelet's figures. */
function chaosResult(
  options: ChaosOptions,
  world: ChaosWorld,
  run: { started: number; churnEnded: number; churn: ChurnCounts; sampling: SampleCounts; injected: InjectedFault[]; end: EndState },
): ChaosResult {
  const { end, injected } = run;
  const lastFaultEnd = run.started + 1000 * lastFaultEndS(injected);
  const { adds, addFailures, dels, delFailures, droppedDels, killedAdds, errors } = world.kubelet.stats;
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
  };
}
