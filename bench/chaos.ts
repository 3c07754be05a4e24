// npm run chaos [-- --temporal dev|server --workers N --duration 20m --rate 1 --pods 40 --nodes 4 --pool-size 80 --seed 1 --faults all
//   --fault-gap 60s --power-off 40s --fault-window 45s --drop-share 0.5 --kill-share 0.5 --sample 5s
//   --reclaim-window 120s --settle 5m --out bench/results/chaos.json]
// Steady pod churn on simulated nodes against the local stack's Tidepool worker and agent while faults are
// injected at seeded random moments; the invariants are sampled throughout and checked in full at the end.
// Exits 1 when any invariant was violated.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { parseDuration } from '../src/config.ts';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { buildCni } from '../scripts/build-cni.ts';
import { CHAOS_WORKER_ENV, runChaos, stackProcessControl, type ChaosResult } from '../sim/chaos.ts';
import { parseFaultKinds } from '../sim/faults.ts';
import { workerName } from '../stack/components.ts';
import { stackConfig, stackPaths, temporalKind, workerCount, type StackConfig } from '../stack/config.ts';
import { chosenTemporal, startComponent, stopComponent, up } from '../stack/stack.ts';

const { values: args } = parseArgs({
  options: {
    temporal: { type: 'string' },
    workers: { type: 'string' },
    duration: { type: 'string', default: '20m' },
    rate: { type: 'string', default: '1' },
    pods: { type: 'string', default: '40' },
    nodes: { type: 'string', default: '4' },
    'pool-size': { type: 'string', default: '80' },
    seed: { type: 'string', default: '1' },
    faults: { type: 'string', default: 'all' },
    'fault-gap': { type: 'string', default: '60s' },
    'power-off': { type: 'string', default: '40s' },
    'fault-window': { type: 'string', default: '45s' },
    'drop-share': { type: 'string', default: '0.5' },
    'kill-share': { type: 'string', default: '0.5' },
    sample: { type: 'string', default: '5s' },
    'reclaim-window': { type: 'string', default: '120s' },
    settle: { type: 'string', default: '5m' },
    out: { type: 'string', default: 'bench/results/chaos.json' },
  },
});

function positive(name: string, integer: boolean): number {
  const value = Number(args[name as keyof typeof args]);
  if (!(value > 0) || (integer && !Number.isInteger(value))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${String(args[name as keyof typeof args])}`);
  return value;
}

function share(name: 'drop-share' | 'kill-share'): number {
  const value = Number(args[name]);
  if (!(value >= 0 && value <= 1)) throw new Error(`--${name} must be between 0 and 1, not ${args[name]}`);
  return value;
}

const root = path.resolve(import.meta.dirname, '..');
const commandLine = `npm run chaos -- ${process.argv.slice(2).join(' ')}`.trim();

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

function summary(result: ChaosResult): string {
  const faults = Object.entries(result.faultsByKind).map(([kind, count]) => `${kind} ${count}`).join(', ');
  const failedFaults = result.faults.filter((fault) => fault.error);
  const restarts = result.faults.filter((fault) => fault.survived !== undefined);
  return [
    `pods churned: ${result.podsCreated} created, ${result.podsDeleted} deleted (${result.churnErrors} API calls refused or failed, retried)`,
    `faults injected: ${faults}${failedFaults.length > 0 ? `; ${failedFaults.length} failed: ${failedFaults.map((f) => `${f.kind}: ${f.error}`).join('; ')}` : ''}`,
    `CNI: ${result.kubelet.adds} ADDs (${result.kubelet.addFailures} failed, ${result.kubelet.killedAdds} killed mid-ADD), ${result.kubelet.dels} DELs (${result.kubelet.delFailures} failed, ${result.kubelet.droppedDels} dropped)`,
    `worker and agent ran on through every Temporal, PostgreSQL and kube-apiserver restart: ${restarts.every((f) => f.survived?.worker && f.survived.agent) ? 'yes' : `no (${restarts.filter((f) => !f.survived?.worker || !f.survived.agent).map((f) => `${f.kind} at ${f.startedS} s: ${JSON.stringify(f.survived)}`).join('; ')})`}`,
    `ADDs that failed while a worker was down (or within an ADD's deadline of its return), cni-kill's left out: ${result.addsFailedWhileWorkerDown}`,
    `worker memory (RSS): ${rssSummary(result)}`,
    `samples: ${result.samples} (${result.failedSamples} unreadable while the API server was down)`,
    `violations: ${result.violations.length}`,
    ...result.violations.map((violation) => `  - ${violation.invariant} at ${new Date(violation.at).toISOString()}: ${violation.detail}`),
    result.converged
      ? `converged: ${result.convergeAfterLastFaultS} s after the last fault ended, ${result.convergeAfterChurnS} s after churn stopped (${result.finalPods} pods Running, ${result.finalRecords} IPs recorded)`
      : `NOT converged within --settle ${args.settle}`,
  ].join('\n');
}

/** Each worker process's RSS when first and last sampled, in run order. */
function rssSummary(result: ChaosResult): string {
  const byProcess = Map.groupBy(result.workerRss, (sample) => `${sample.worker} (pid ${sample.pid})`);
  return [...byProcess].map(([name, samples]) => `${name} ${samples[0]!.rssMiB} MiB at ${samples[0]!.atS} s, ${samples.at(-1)!.rssMiB} MiB at ${samples.at(-1)!.atS} s`).join('; ') || 'not sampled';
}

async function main(): Promise<number> {
  const durationMs = parseDuration(args.duration, '--duration');
  const config: StackConfig = {
    ...stackConfig,
    ...(args.temporal !== undefined ? { temporal: temporalKind(args.temporal) ?? 'dev' } : {}),
    ...(args.workers !== undefined ? { workers: workerCount(args.workers, '--workers') } : {}),
  };
  const temporal = chosenTemporal(config);
  const faults = parseFaultKinds(args.faults, temporal);
  const options = {
    durationMs,
    rate: positive('rate', false),
    pods: positive('pods', true),
    nodes: positive('nodes', true),
    poolSize: positive('pool-size', true),
    seed: Number.parseInt(args.seed, 10),
    faults,
    meanFaultGapMs: parseDuration(args['fault-gap'], '--fault-gap'),
    powerOffMs: parseDuration(args['power-off'], '--power-off'),
    faultWindowMs: parseDuration(args['fault-window'], '--fault-window'),
    dropDelShare: share('drop-share'),
    killAddShare: share('kill-share'),
    sampleMs: parseDuration(args.sample, '--sample'),
    reclaimWindowMs: parseDuration(args['reclaim-window'], '--reclaim-window'),
    settleMs: parseDuration(args.settle, '--settle'),
  };
  if (!Number.isInteger(options.seed)) throw new Error(`--seed must be an integer, not ${args.seed}`);
  if (options.poolSize < options.pods) throw new Error(`--pool-size ${options.poolSize} is smaller than --pods ${options.pods}: the pods could never all run`);
  const cni = await buildCni();
  const log = (line: string) => console.error(`[chaos] ${line}`);
  // The workers must run with the chaos run's short reclaim windows: those started before with other settings are replaced.
  const workers = Array.from({ length: config.workers }, (_, index) => workerName(index + 1));
  for (const name of workers) await stopComponent(name, 'SIGTERM', config);
  const info = await up(config, (line) => console.error(`[stack] ${line}`), { tidepool: true, workerEnv: CHAOS_WORKER_ENV });
  const revision = commit();
  console.error(`chaos: ${args.duration} of churn on the ${temporal === 'server' ? 'real Temporal server' : 'Temporal dev server'} with ${config.workers} worker${config.workers > 1 ? 's' : ''} (${options.rate} pods/s, ${options.pods} live, ${options.nodes} nodes, pool of ${options.poolSize}), seed ${options.seed}, faults ${faults.join(', ') || 'none'}, commit ${revision}`);
  const result = await runChaos({
    ...options,
    kubeConfig: loadKubeConfig(info.kubeconfig),
    temporal: { address: info.temporalAddress, namespace: info.temporalNamespace },
    cni: { binary: cni, agentSocket: info.agentSocket ?? stackPaths().agentSocket, spoolDir: stackPaths().cniSpool },
    processes: stackProcessControl(log, config),
    temporalKind: temporal,
    workers: config.workers,
    log,
  });
  const report = {
    date: new Date().toISOString(),
    command: commandLine,
    commit: revision,
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`,
    workerEnv: CHAOS_WORKER_ENV,
    ...result,
  };
  const out = path.resolve(root, args.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${summary(result)}\n\nchaos: wrote ${path.relative(root, out)}`);
  // Back to the workers' own settings.
  for (const name of workers) {
    await stopComponent(name, 'SIGTERM', config);
    await startComponent(name, config);
  }
  return result.violations.length === 0 && result.converged ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`chaos: ${(error as Error).message}`);
    process.exit(1);
  },
);
