// npm run bench:cluster [-- --ipam tidepool,spiderpool,host-local,whereabouts --pods 1000 --nodes 10 --ip-ratio 1.0
//   --scenarios create,rebuild,recovery,delete --deadline 15m --power-off 45s --parallelism 8
//   --spiderpool-ports <first port> --out bench/results/cluster.json --chart docs/images/cluster-bench.svg --no-docs]
// Seed 001's 1000-pod test on the local stack with simulated nodes: every IPAM in the same run, one after
// another, each on a pool of exactly as many IPs as pods (times --ip-ratio).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { parseDuration } from '../src/config.ts';
import { applyManifests, readManifests, waitForCrdsEstablished } from '../src/k8s/apply.ts';
import { buildCni } from '../scripts/build-cni.ts';
import { runClusterScenarios, SCENARIOS, type Scenario, type ScenarioResult } from '../sim/scenarios.ts';
import { stackPaths } from '../stack/config.ts';
import { up } from '../stack/stack.ts';
import { lineChartSvg } from './chart.ts';
import { apiWritesDelta, sampleApiWrites, writesPerPod, type ApiWrites } from './api-requests.ts';
import { cpuDelta, sampleCpu, type CpuSample } from './cpu.ts';
import { describeEvents, lifecycleEvents, type LifecycleEvents } from './history-events.ts';
import { ipamMissing, IPAMS, PEERS_DIR, prepareIpam, type IpamName } from './ipams.ts';
import { choose, optionalPort, parseOrExit, runMain } from './args.ts';
import { markdownTable, percentile, publishReport } from './report.ts';

const { args, chosenIpams, scenarios, pods, nodeCount, ips, deadlineMs, powerOffMs, spiderpoolPortBase } = parseOrExit('bench:cluster', () => {
  const { values: args } = parseArgs({
    options: {
      ipam: { type: 'string', default: IPAMS.join(',') },
      pods: { type: 'string', default: '1000' },
      nodes: { type: 'string', default: '10' },
      'ip-ratio': { type: 'string', default: '1.0' },
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      deadline: { type: 'string', default: '15m' },
      'power-off': { type: 'string', default: '45s' },
      parallelism: { type: 'string', default: '8' },
      'spiderpool-ports': { type: 'string' },
      out: { type: 'string', default: 'bench/results/cluster.json' },
      chart: { type: 'string', default: 'docs/images/cluster-bench.svg' },
      'no-docs': { type: 'boolean', default: false },
    },
  });
  const pods = Number(args.pods);
  const nodeCount = Number(args.nodes);
  const ratio = Number(args['ip-ratio']);
  if (!Number.isInteger(pods) || pods < 1 || !Number.isInteger(nodeCount) || nodeCount < 1 || !(ratio > 0)) {
    throw new Error('--pods and --nodes must be positive integers and --ip-ratio a positive number');
  }
  if (!(Number(args.parallelism) >= 1)) throw new Error(`--parallelism ${args.parallelism} is not a positive number`);
  return {
    args,
    chosenIpams: choose(args.ipam, IPAMS, 'ipam'),
    scenarios: choose(args.scenarios, SCENARIOS, 'scenarios'),
    pods,
    nodeCount,
    ips: Math.ceil(pods * ratio),
    deadlineMs: parseDuration(args.deadline, '--deadline'),
    powerOffMs: parseDuration(args['power-off'], '--power-off'),
    spiderpoolPortBase: optionalPort(args['spiderpool-ports'], 'spiderpool-ports'),
  };
});
const root = path.resolve(import.meta.dirname, '..');
const commandLine = `npm run bench:cluster -- ${process.argv.slice(2).join(' ')}`.trim();

/** 97 s as seed 001 writes it: 1m37s. */
function duration(seconds: number): string {
  const whole = Math.round(seconds);
  return whole >= 60 ? `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s` : `${whole}s`;
}

function progressBar(label: string): (scenario: Scenario, line: string) => void {
  let lastPrinted = 0;
  return (scenario, line) => {
    const match = /^(\d+)\/(\d+)/.exec(line);
    const share = match ? Number(match[1]) / Number(match[2]) : 0;
    const bar = `${'#'.repeat(Math.round(share * 30))}${'.'.repeat(30 - Math.round(share * 30))}`;
    const text = `[${label} ${scenario}] ${bar} ${line}`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${text.padEnd(110).slice(0, 110)}`);
    } else if (Date.now() - lastPrinted > 10_000) {
      process.stderr.write(`${text}\n`);
      lastPrinted = Date.now();
    }
  };
}

interface IpamRun {
  ipam: IpamName;
  results: (ScenarioResult & { cpuSeconds: CpuSample; apiWrites: ApiWrites; startedAt: string })[];
  /** Tidepool: the history events of sampled lifecycles, split at the rebuild's start. */
  lifecycleEvents?: LifecycleEvents;
  adds: number;
  addFailures: number;
  dels: number;
  droppedDels: number;
  addP50Ms: number;
  addP99Ms: number;
  error?: string;
}

async function runIpam(ipam: IpamName, kubeConfig: KubeConfig, kubeconfigPath: string, agentSocket: string, temporal: Client): Promise<IpamRun> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const tag = randomBytes(3).toString('hex');
  const namespace = `bench-${ipam}-${tag}`;
  const nodes = Array.from({ length: nodeCount }, (_, index) => `bench-${ipam}-${tag}-${index}`);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const prepared = await prepareIpam(ipam, {
    kubeConfig,
    kubeconfigPath,
    root,
    tag,
    nodes,
    ips,
    peersDir: PEERS_DIR,
    tidepool: { cni: path.join(root, 'dist', 'tidepool-cni'), agentSocket, spoolDir: stackPaths().cniSpool },
    spiderpool: { portBase: spiderpoolPortBase },
  });
  const cpu = new Map<Scenario, CpuSample>();
  const cpuSeconds = new Map<Scenario, CpuSample>();
  const writesAtStart = new Map<Scenario, ApiWrites>();
  const apiWrites = new Map<Scenario, ApiWrites>();
  const startedAt = new Map<Scenario, Date>();
  try {
    const { results, kubelet } = await runClusterScenarios({
      kubeConfig,
      ipam: prepared,
      namespace,
      nodes,
      pods,
      scenarios,
      deadlineMs,
      powerOffMs,
      parallelismPerNode: Number(args.parallelism),
      onProgress: progressBar(ipam),
      onTimed: async (scenario, phase) => {
        const sample = sampleCpu(prepared.processes?.());
        const writes = await sampleApiWrites(kubeconfigPath);
        if (phase === 'start') {
          cpu.set(scenario, sample);
          writesAtStart.set(scenario, writes);
          startedAt.set(scenario, new Date());
        } else {
          cpuSeconds.set(scenario, renameCpu(cpuDelta(cpu.get(scenario)!, sample)));
          apiWrites.set(scenario, apiWritesDelta(writesAtStart.get(scenario)!, writes));
        }
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    const stats = kubelet.stats;
    await kubelet.removeNodes();
    const rebuildStart = startedAt.get('rebuild');
    const events = ipam === 'tidepool' && startedAt.has('create') && rebuildStart ? await lifecycleEvents(temporal, namespace, rebuildStart) : undefined;
    return {
      ipam,
      results: results.map((result) => ({
        ...result,
        cpuSeconds: cpuSeconds.get(result.scenario) ?? {},
        apiWrites: apiWrites.get(result.scenario) ?? { writes: {}, conflicts: {} },
        startedAt: startedAt.get(result.scenario)?.toISOString() ?? '',
      })),
      ...(events ? { lifecycleEvents: events } : {}),
      adds: stats.adds,
      addFailures: stats.addFailures,
      dels: stats.dels,
      droppedDels: stats.droppedDels,
      addP50Ms: Math.round(percentile(stats.addMs, 50)),
      addP99Ms: Math.round(percentile(stats.addMs, 99)),
    };
  } finally {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    for (const name of nodes) await core.deleteNode({ name }).catch(() => undefined);
    await prepared.cleanup();
    await namespaceGone(core, namespace);
  }
}

/**
 * Waits for the run's namespace to be gone (after a scenario that leaves pods, their deletion goes on for a
 * minute or more), so that the next IPAM's run does not share the machine with this one's cleanup.
 */
async function namespaceGone(core: CoreV1Api, namespace: string, timeoutMs = 10 * 60_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    const exists = await core.readNamespace({ name: namespace }).then(() => true, (error: { code?: number }) => error.code !== 404);
    if (!exists) return;
    if (Date.now() - started > timeoutMs) {
      console.error(`bench:cluster: namespace ${namespace} still exists after ${timeoutMs / 60_000} min; the next run shares the machine with its deletion`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** In this benchmark the bench process is the simulated kubelet, and its children are the IPAM's plugin processes. */
function renameCpu(sample: CpuSample): CpuSample {
  const names: Record<string, string> = { 'worker + agent (bench process)': 'simulated kubelet', 'tidepool-cni processes': 'CNI plugin processes' };
  return Object.fromEntries(Object.entries(sample).map(([name, value]) => [names[name] ?? name, value]));
}

function cell(run: IpamRun, scenario: Scenario): string {
  const result = run.results.find((r) => r.scenario === scenario);
  if (!result) return run.results.length > 0 ? 'not run' : `error: ${run.error ?? 'not run'}`;
  return result.ok ? duration(result.seconds) : `failed: ${result.progress.split(';')[0]!.replace(/^failed at /, '').replace(/ after .*$/, '')} at ${duration(result.seconds)}`;
}

/** The targets of the issue "The cost of an IP" (2x host-local, faster than Spiderpool, 75 CPU-ms per pod in create) and seed 001's. */
function targets(runs: IpamRun[]): string[] {
  const resultOf = (ipam: IpamName, scenario: Scenario) => runs.find((run) => run.ipam === ipam)?.results.find((r) => r.scenario === scenario);
  const seconds = (ipam: IpamName, scenario: Scenario) => {
    const result = resultOf(ipam, scenario);
    return result?.ok ? result.seconds : undefined;
  };
  const lines: string[] = [];
  for (const scenario of scenarios) {
    const tp = seconds('tidepool', scenario);
    if (tp === undefined) continue;
    const hl = seconds('host-local', scenario);
    if (hl !== undefined) {
      const ratio = tp / hl;
      lines.push(`- ${scenario}: Tidepool ${duration(tp)} against host-local ${duration(hl)}, ${ratio.toFixed(2)}x (target 2x or less: ${ratio <= 2 ? 'met' : 'missed'})`);
    }
    const spiderpool = resultOf('spiderpool', scenario);
    if (spiderpool) {
      lines.push(
        spiderpool.ok
          ? `- ${scenario}: Tidepool ${duration(tp)} against Spiderpool ${duration(spiderpool.seconds)}, ${(spiderpool.seconds / tp).toFixed(2)}x faster (target: faster: ${tp < spiderpool.seconds ? 'met' : 'missed'})`
          : `- ${scenario}: Tidepool ${duration(tp)}; Spiderpool had not finished at its ${duration(spiderpool.seconds)} deadline (target: faster: met)`,
      );
    }
  }
  const create = resultOf('tidepool', 'create');
  if (create?.ok) {
    const cpuMs = (Object.values(create.cpuSeconds).reduce((sum, value) => sum + value, 0) / pods) * 1000;
    lines.push(`- create: ${cpuMs.toFixed(0)} CPU-ms per pod, all processes (target 75 or less: ${cpuMs <= 75 ? 'met' : 'missed'})`);
  }
  const recovery = resultOf('tidepool', 'recovery');
  if (recovery) {
    const clean = recovery.ok && recovery.audit?.leaked.length === 0 && recovery.audit.duplicates.length === 0;
    lines.push(`- recovery: Tidepool ${recovery.ok ? `${recovery.progress} after ${duration(recovery.seconds)}` : recovery.progress}, ${recovery.audit?.leaked.length ?? '?'} IPs leaked, ${recovery.audit?.duplicates.length ?? '?'} held twice (target: all Running, none leaked: ${clean ? 'met' : 'missed'})`);
  }
  const tp = seconds('tidepool', 'create');
  const wbRun = resultOf('whereabouts', 'create');
  if (tp !== undefined && wbRun) {
    const ratio = wbRun.seconds / tp;
    lines.push(
      wbRun.ok
        ? `- create against Whereabouts: ${ratio.toFixed(1)}x faster (seed 001's target 10x: ${ratio >= 10 ? 'met' : 'missed'})`
        : `- create against Whereabouts: Whereabouts had not finished at its ${duration(wbRun.seconds)} deadline, so at least ${ratio.toFixed(1)}x (seed 001's target 10x: ${ratio >= 10 ? 'met' : 'not shown'})`,
    );
  }
  return lines;
}

async function main(): Promise<void> {
  if (chosenIpams.some((ipam) => ipam !== 'tidepool')) execFileSync('bash', [path.join(root, 'stack', 'build-peers.sh')], { stdio: 'inherit' });
  const ipams = chosenIpams.filter((ipam) => {
    const missing = ipamMissing(ipam);
    if (missing) console.error(`bench:cluster: skipping ${ipam}: ${missing}`);
    return !missing;
  });
  if (ipams.length === 0) throw new Error(`none of ${chosenIpams.join(', ')} can run here`);
  if (ipams.includes('tidepool')) await buildCni();
  const info = await up(undefined, (line) => console.error(`[stack] ${line}`), { tidepool: true });
  const kubeConfig = loadKubeConfig(info.kubeconfig);
  if (ipams.includes('whereabouts')) {
    const crds = readManifests(path.join(PEERS_DIR, 'crds'));
    await applyManifests(kubeConfig, crds);
    await waitForCrdsEstablished(kubeConfig, crds.map((crd) => crd.metadata!.name!));
  }
  console.error(`bench:cluster: ${pods} pods on ${nodeCount} simulated nodes, ${ips} IPs, scenarios ${scenarios.join(', ')}, deadline ${args.deadline} each`);

  const runs: IpamRun[] = [];
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const temporal = new Client({ connection, namespace: info.temporalNamespace });
    for (const ipam of ipams) {
      try {
        runs.push(await runIpam(ipam, kubeConfig, info.kubeconfig, info.agentSocket ?? stackPaths().agentSocket, temporal));
      } catch (error) {
        const { message, cause } = error as Error;
        runs.push({ ipam, results: [], adds: 0, addFailures: 0, dels: 0, droppedDels: 0, addP50Ms: 0, addP99Ms: 0, error: cause instanceof Error ? `${message} (${cause.message})` : message });
      }
    }
  } finally {
    await connection.close();
  }

  const table = markdownTable(
    ['IPAM', ...scenarios, 'IPs held twice', 'IPs leaked', 'CNI ADDs (failed)', 'ADD p50 / p99'],
    runs.map((run) => [
      run.ipam,
      ...scenarios.map((scenario) => cell(run, scenario)),
      run.results.reduce((sum, r) => sum + (r.audit?.duplicates.length ?? 0), 0),
      run.results.reduce((sum, r) => sum + (r.audit?.leaked.length ?? 0), 0),
      `${run.adds} (${run.addFailures})`,
      `${run.addP50Ms} / ${run.addP99Ms} ms`,
    ]),
  );
  const cpuTable = markdownTable(
    ['IPAM', 'scenario', 'CPU seconds by process'],
    runs.flatMap((run) =>
      run.results.map((result) => [
        run.ipam,
        result.scenario,
        Object.entries(result.cpuSeconds)
          .filter(([, value]) => value >= 0.5)
          .sort((a, b) => b[1] - a[1])
          .map(([name, value]) => `${name} ${value.toFixed(1)}`)
          .join(', '),
      ]),
    ),
  );
  const cpuPerPod = markdownTable(
    ['IPAM', 'scenario', 'CPU-ms per pod', 'by process'],
    runs.flatMap((run) =>
      run.results.map((result) => {
        const total = Object.values(result.cpuSeconds).reduce((sum, value) => sum + value, 0);
        const top = Object.entries(result.cpuSeconds)
          .filter(([, value]) => (value / pods) * 1000 >= 1)
          .sort((a, b) => b[1] - a[1])
          .map(([name, value]) => `${name} ${((value / pods) * 1000).toFixed(0)}`)
          .join(', ');
        return [run.ipam, result.scenario, ((total / pods) * 1000).toFixed(0), top];
      }),
    ),
  );
  const writesTable = markdownTable(
    ['IPAM', 'scenario', 'API writes per pod (409 conflicts)'],
    runs.flatMap((run) => run.results.map((result) => [run.ipam, result.scenario, writesPerPod(result.apiWrites, pods) || 'none'])),
  );
  const tidepoolEvents = runs.find((run) => run.lifecycleEvents)?.lifecycleEvents;
  const errors = runs.flatMap((run) =>
    run.results
      .filter((result) => result.addFailures > 0)
      .map((result) => `- ${run.ipam} ${result.scenario}: ${result.addFailures} failed; ${Object.entries(result.errors).map(([message, count]) => `${count}x \`${message.slice(0, 200)}\``).join(', ')}`),
  );
  const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`;
  const chartPath = path.resolve(root, args.chart);
  mkdirSync(path.dirname(chartPath), { recursive: true });
  writeFileSync(
    chartPath,
    lineChartSvg(
      scenarios.map((scenario) => ({
        title: scenario,
        yLabel: scenario === 'delete' ? 'pods left' : 'pods Running',
        series: runs.map((run) => ({ name: run.ipam, points: run.results.find((r) => r.scenario === scenario)?.timeline ?? [] })),
      })),
      `${pods} pods, ${nodeCount} nodes, ${ips} IPs`,
      pods,
    ),
  );
  const report = {
    date: new Date().toISOString(),
    machine,
    command: commandLine,
    pods,
    nodes: nodeCount,
    ips,
    deadlineSeconds: deadlineMs / 1000,
    runs,
  };
  const out = path.resolve(root, args.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const body = [
    `Measured ${report.date.slice(0, 10)} on ${machine} with \`${commandLine}\` (${pods} pods on ${nodeCount} simulated nodes, ${ips} IPs, deadline ${args.deadline} per scenario).`,
    '',
    table,
    '',
    ...targets(runs),
    '',
    `![Pods Running over time per IPAM](${path.relative(path.join(root, 'docs'), chartPath)})`,
    '',
    'CPU seconds per timed scenario (processes above 0.5 s; "CNI plugin processes" are the IPAM plugin runs of the simulated kubelet):',
    '',
    cpuTable,
    '',
    'CPU per pod (all processes of the machine that the benchmark samples, CPU-ms per pod of the run; processes at 1 ms or more):',
    '',
    cpuPerPod,
    '',
    'API-server writes per pod, from `apiserver_request_total` (every client: the simulated kubelet, kube-controller-manager and the IPAM):',
    '',
    writesTable,
    ...(tidepoolEvents
      ? [
          '',
          `Temporal history events per Tidepool lifecycle (${tidepoolEvents.sampled} lifecycles that lived through create and rebuild): create ${describeEvents(tidepoolEvents.create)}; deletion ${describeEvents(tidepoolEvents.delete)}.`,
        ]
      : []),
    ...(errors.length > 0 ? ['', 'Failed CNI ADDs and their most frequent kinds:', '', ...errors] : []),
  ].join('\n');
  publishReport('bench:cluster', { root, section: 'cluster', body, written: [out, chartPath], noDocs: args['no-docs'] });
}

runMain('bench:cluster', main);
