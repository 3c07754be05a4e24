// The chaos run's fault injector: each planned fault at its moment, against the stack's processes or the
// simulated kubelet, with a record of when it began and ended.
import { setTimeout as sleep } from 'node:timers/promises';
import type { PlannedFault } from '../faults.ts';
import type { SimulatedKubelet } from '../kubelet.ts';
import { workerName } from '../../stack/components.ts';

/** The stack's processes a chaos run kills and restarts: a worker, either kind of Temporal, PostgreSQL under the real one, the API server. */
export type ChaosProcess = 'tidepool-worker' | `tidepool-worker-${number}` | 'temporal' | 'temporal-server' | 'postgres' | 'kube-apiserver';

/** The faults that stop a process; one runs at a time. */
const PROCESS_FAULTS: readonly PlannedFault['kind'][] = ['worker-kill', 'temporal-restart', 'apiserver-restart', 'postgres-restart'];

export interface ChaosProcessControl {
  /** SIGINT for PostgreSQL: its fast shutdown (SIGTERM waits for every session to end). */
  stop: (name: ChaosProcess, signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT') => Promise<unknown>;
  /** Starts the process again and resolves once it is ready. */
  start: (name: ChaosProcess) => Promise<void>;
  /** The running process's id: whether the worker and the agent outlived a restart of what they depend on, and whose memory to sample. */
  pid: (name: ChaosProcess | 'tidepool-agent') => number | undefined;
}

export interface InjectedFault extends PlannedFault {
  /** Seconds since the run's start when it began and when it was over (the process ready again). */
  startedS: number;
  endedS?: number;
  error?: string;
  /** For a Temporal, PostgreSQL or kube-apiserver restart: whether the worker and the agent ran on through it (same process). */
  survived?: { worker: boolean; agent: boolean };
}

export interface FaultTargets {
  processes: ChaosProcessControl;
  /** Which Temporal runs: a temporal-restart restarts the dev server or the real server. */
  temporal: 'dev' | 'server';
  kubelet: SimulatedKubelet;
  /** The share of DELs dropped, or of ADDs killed, in a window of that fault. */
  dropDelShare: number;
  killAddShare: number;
  log: (line: string) => void;
}

/**
 * Schedules every fault of `plan` from `started` on. `injected` grows as faults begin; `allOver` settles once
 * every fault is over.
 */
export function startFaults(
  plan: readonly PlannedFault[],
  started: number,
  targets: FaultTargets,
  seconds: (at: number) => number,
): { injected: InjectedFault[]; allOver: () => Promise<unknown> } {
  const injected: InjectedFault[] = [];
  let processFaults: Promise<void> = Promise.resolve();
  const tasks = plan.map(async (fault) => {
    await sleep(Math.max(0, started + fault.atMs - Date.now()));
    if (PROCESS_FAULTS.includes(fault.kind)) {
      // One process fault at a time: the next one begins once the last process is back.
      const turn = processFaults.then(() => inject(fault, injected, targets, seconds));
      processFaults = turn;
      await turn;
    } else {
      await inject(fault, injected, targets, seconds);
    }
  });
  return { injected, allOver: () => Promise.all(tasks) };
}

/** Seconds since the run's start when the last fault was over; 0 before any was. */
export function lastFaultEndS(injected: readonly InjectedFault[]): number {
  return Math.max(0, ...injected.map((fault) => fault.endedS ?? 0));
}

async function inject(
  fault: PlannedFault,
  injected: InjectedFault[],
  { processes, temporal, kubelet, dropDelShare, killAddShare, log }: FaultTargets,
  seconds: (at: number) => number,
): Promise<void> {
  const record: InjectedFault = { ...fault, startedS: seconds(Date.now()) };
  injected.push(record);
  log(`fault ${fault.kind}${fault.node ? ` ${fault.node}` : ''}${fault.worker ? ` ${workerName(fault.worker)}` : ''} at ${record.startedS} s`);
  try {
    switch (fault.kind) {
      case 'worker-kill': {
        const name = workerName(fault.worker ?? 1) as ChaosProcess;
        await processes.stop(name, 'SIGKILL');
        await sleep(fault.forMs);
        await startAgain(processes, name, log);
        break;
      }
      case 'temporal-restart':
      case 'postgres-restart':
      case 'apiserver-restart': {
        const name: ChaosProcess =
          fault.kind === 'apiserver-restart' ? 'kube-apiserver' : fault.kind === 'postgres-restart' ? 'postgres' : temporal === 'server' ? 'temporal-server' : 'temporal';
        const before = { worker: processes.pid('tidepool-worker'), agent: processes.pid('tidepool-agent') };
        await processes.stop(name, name === 'postgres' ? 'SIGINT' : 'SIGTERM');
        await startAgain(processes, name, log);
        record.survived = {
          worker: before.worker !== undefined && processes.pid('tidepool-worker') === before.worker,
          agent: before.agent !== undefined && processes.pid('tidepool-agent') === before.agent,
        };
        break;
      }
      case 'drop-dels':
        kubelet.setDropDelShare(dropDelShare);
        await sleep(fault.forMs);
        kubelet.setDropDelShare(0);
        break;
      case 'cni-kill':
        kubelet.setKillAddShare(killAddShare, 1500);
        await sleep(fault.forMs);
        kubelet.setKillAddShare(0, 0);
        break;
      case 'node-power':
        kubelet.powerOff(fault.node!);
        await sleep(fault.forMs);
        kubelet.powerOn(fault.node!);
        break;
    }
  } catch (error) {
    record.error = (error as Error).message.split('\n')[0];
    log(`fault ${fault.kind} failed: ${record.error}`);
  }
  record.endedS = seconds(Date.now());
  log(`fault ${fault.kind} over at ${record.endedS} s`);
}

/** As a Deployment or systemd would: start the process again until it is ready. */
async function startAgain(processes: ChaosProcessControl, name: ChaosProcess, log: (line: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await processes.start(name);
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
      log(`${name} did not come back (${(error as Error).message.split('\n')[0]}); starting it again`);
      await processes.stop(name, 'SIGKILL').catch(() => undefined);
    }
  }
}
