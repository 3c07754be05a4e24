// The chaos run's invariants: sampled throughout the run, and checked in full on the end state once churn
// and faults have stopped.
import { setTimeout as sleep } from 'node:timers/promises';
import { finalViolations, SampledInvariants, type FinalFacts, type Violation } from '../invariants.ts';
import { readFinalFacts, readPods, readRecords, type ChaosScope } from './facts.ts';

type Log = (line: string) => void;

export interface SampleCounts {
  samples: number;
  /** Samples that could not be read (kube-apiserver down). */
  failedSamples: number;
  violations: Violation[];
}

/** Samples every `sampleMs` until `stopping` aborts; `done` settles when it has stopped. */
export function startSampling(
  scope: ChaosScope,
  settings: { reclaimWindowMs: number; sampleMs: number },
  seconds: (at: number) => number,
  log: Log,
  stopping: AbortSignal,
): { counts: SampleCounts; done: Promise<void> } {
  const counts: SampleCounts = { samples: 0, failedSamples: 0, violations: [] };
  const sampled = new SampledInvariants(settings.reclaimWindowMs);
  const sampler = async () => {
    while (!stopping.aborted) {
      try {
        // Pools first: every record then names a pod that the later pod list has seen (or seen gone).
        const { records } = await readRecords(scope);
        const pods = await readPods(scope);
        const found = sampled.observe(records, pods, Date.now());
        for (const violation of found) log(`VIOLATION ${violation.invariant} at ${seconds(violation.at)} s: ${violation.detail}`);
        counts.violations.push(...found);
        counts.samples++;
      } catch {
        counts.failedSamples++;
      }
      await sleep(settings.sampleMs);
    }
  };
  return { counts, done: sampler() };
}

export interface EndState {
  converged: boolean;
  convergedAt?: number;
  /** The last end state read, converged or not. */
  finalFacts?: FinalFacts;
  /** What the end state still violated when `settleMs` ran out; empty once it converged. */
  violations: Violation[];
}

/** Reads the end state every 2 s until it meets every invariant or `settleMs` has passed. */
export async function awaitEndState(
  scope: ChaosScope,
  temporal: { address: string; namespace: string },
  settleMs: number,
  log: Log,
): Promise<EndState> {
  const deadline = Date.now() + settleMs;
  let finalFacts: FinalFacts | undefined;
  let lastViolations: Violation[];
  for (;;) {
    try {
      finalFacts = await readFinalFacts(scope, temporal);
      lastViolations = finalViolations(finalFacts, Date.now());
      if (lastViolations.length === 0) return { converged: true, convergedAt: Date.now(), finalFacts, violations: [] };
    } catch (error) {
      lastViolations = [];
      log(`end state not readable: ${(error as Error).message.split('\n')[0]}`);
    }
    if (Date.now() > deadline) break;
    await sleep(2000);
  }
  for (const violation of lastViolations) log(`VIOLATION (end state) ${violation.invariant}: ${violation.detail}`);
  return { converged: false, finalFacts, violations: lastViolations };
}
