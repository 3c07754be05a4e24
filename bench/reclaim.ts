// npm run bench:reclaim [-- --ipam tidepool,spiderpool --spiderpool-scans default,sweep --pods 10 --grace 30s
//   --deadline 6m --kill-deadline 2m --downtime 20s --spiderpool-ports <first port>
//   --out bench/results/reclaim.json --no-docs]
// How long an IPAM takes to free a pod's IP by itself, once the pod is gone and no CNI DEL came: Tidepool and
// Spiderpool on the same local stack and simulated nodes, at their default settings, and Spiderpool again with
// its periodic scan at Tidepool's sweep interval.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { parseDuration } from '../src/config.ts';
import { loadReclaimSettings } from '../src/gc/config.ts';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { buildCni } from '../scripts/build-cni.ts';
import { SimulatedKubelet } from '../sim/kubelet.ts';
import { isRunning } from '../sim/scenarios.ts';
import { stackPaths } from '../stack/config.ts';
import { up } from '../stack/stack.ts';
import { choose, optionalPort, parseOrExit, runMain } from './args.ts';
import { ipamMissing, PEERS_DIR, prepareIpam, type PreparedIpam } from './ipams.ts';
import {
  CASE_DESCRIPTIONS,
  CASES,
  ipsNeeded,
  podSpec,
  settleCase,
  setUpCase,
  tearDownCase,
  triggerCase,
  waitCaseRunning,
  type CaseName,
  type CaseRun,
  type CaseSettings,
} from './reclaim-cases.ts';
import { markdownTable, percentile, publishReport } from './report.ts';

const RECLAIMING_IPAMS = ['tidepool', 'spiderpool'] as const;
type ReclaimingIpam = (typeof RECLAIMING_IPAMS)[number];
const sweepMs = loadReclaimSettings().sweepIntervalMs;

const options = parseOrExit('bench:reclaim', () => {
  const { values: args } = parseArgs({
    options: {
      ipam: { type: 'string', default: RECLAIMING_IPAMS.join(',') },
      'spiderpool-scans': { type: 'string', default: 'default,sweep' },
      pods: { type: 'string', default: '10' },
      grace: { type: 'string', default: '30s' },
      deadline: { type: 'string', default: `${sweepMs / 1000 + 60}s` },
      'kill-deadline': { type: 'string', default: '2m' },
      downtime: { type: 'string', default: '20s' },
      'spiderpool-ports': { type: 'string' },
      out: { type: 'string', default: 'bench/results/reclaim.json' },
      'no-docs': { type: 'boolean', default: false },
    },
  });
  const victims = Number(args.pods);
  if (!Number.isInteger(victims) || victims < 1) throw new Error(`--pods ${args.pods} is not a positive integer`);
  // Each entry: Spiderpool's default scan (its variable unset), Tidepool's sweep interval, or a duration.
  const scans = args['spiderpool-scans'].split(',').map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    if (entry === 'default') return undefined;
    const ms = entry === 'sweep' ? sweepMs : parseDuration(entry, '--spiderpool-scans');
    if (ms < 1000 || ms % 1000 !== 0) throw new Error(`--spiderpool-scans: ${entry} is not a whole number of seconds`);
    return ms / 1000;
  });
  if (scans.length === 0) throw new Error('--spiderpool-scans: give at least one of default, sweep or a duration');
  return {
    args,
    ipams: choose(args.ipam, RECLAIMING_IPAMS, 'ipam'),
    scans,
    victims,
    graceSeconds: parseDuration(args.grace, '--grace') / 1000,
    deadlineMs: parseDuration(args.deadline, '--deadline'),
    killDeadlineMs: parseDuration(args['kill-deadline'], '--kill-deadline'),
    downtimeMs: parseDuration(args.downtime, '--downtime'),
    spiderpoolPortBase: optionalPort(args['spiderpool-ports'], 'spiderpool-ports'),
  };
});
const root = path.resolve(import.meta.dirname, '..');
const commandLine = `npm run bench:reclaim -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, '');

/** One IPAM at one setting. */
interface Variant {
  ipam: ReclaimingIpam;
  label: string;
  gcIntervalSeconds?: number;
}

interface CaseResult {
  case: CaseName;
  ips: number;
  freed: number;
  medianSeconds: number | null;
  maxSeconds: number | null;
  notFreedByDeadline: number;
  deadlineSeconds: number;
  heldTwice: number;
  liveIPsReleased: number;
}

interface VariantResult {
  label: string;
  ipam: ReclaimingIpam;
  settings: Record<string, string>;
  cases: CaseResult[];
  /** After the cases: as many new pods as IPs were freed, started on a fresh node; how many ran. */
  freshPods: { created: number; running: number };
  error?: string;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** Polls the IPAM's records until every case is done: each tracked IP freed, or the case's deadline passed. */
async function watchReclaim(ipam: PreparedIpam, runs: CaseRun[], deadlineMs: number, actions: Promise<unknown>): Promise<void> {
  // The actions' own rejection reaches the caller through Promise.all; here it only ends the watch.
  const progress: { actions: 'running' | 'done' | 'failed' } = { actions: 'running' };
  actions.then(() => (progress.actions = 'done'), () => (progress.actions = 'failed'));
  const settled = new Set<CaseRun>();
  for (;;) {
    if (progress.actions === 'failed') return;
    const allocated = new Set(await ipam.allocatedIPs());
    const now = Date.now();
    for (const run of runs) {
      for (const tracked of run.tracked) if (tracked.startedAt !== undefined && tracked.freedAt === undefined && !allocated.has(tracked.ip)) tracked.freedAt = now;
      const alive = new Map(run.kubelet.listPods().filter((pod) => !pod.metadata?.deletionTimestamp).map((pod) => [pod.metadata!.name!, pod]));
      for (const [name, ip] of run.bystanders) if (ip && alive.has(name) && !allocated.has(ip)) run.liveReleased.add(ip);
    }
    const done = (run: CaseRun) =>
      run.startedAt !== undefined && (run.tracked.every((tracked) => tracked.freedAt !== undefined) || now - run.startedAt > deadlineMs);
    for (const run of runs) {
      if (!done(run) || settled.has(run)) continue;
      settled.add(run);
      settleCase(run);
    }
    if (progress.actions === 'done' && runs.every(done)) return;
    await sleep(500);
  }
}

function summarize(run: CaseRun, deadlineMs: number, heldTwice: number): CaseResult {
  const times = run.tracked.filter((tracked) => tracked.freedAt !== undefined).map((tracked) => (tracked.freedAt! - tracked.startedAt!) / 1000);
  return {
    case: run.name,
    ips: run.tracked.length,
    freed: times.length,
    medianSeconds: times.length ? seconds(percentile(times, 50) * 1000) : null,
    maxSeconds: times.length ? seconds(Math.max(...times) * 1000) : null,
    notFreedByDeadline: run.tracked.length - times.length,
    deadlineSeconds: deadlineMs / 1000,
    heldTwice,
    liveIPsReleased: run.liveReleased.size,
  };
}

/** New pods on the freed IPs, then every IP that two live pods hold, by the case whose pod held it first. */
async function freshPodsAndDuplicates(settings: CaseSettings, runs: CaseRun[], namespace: string, node: string, count: number) {
  const { kubeConfig, ipam } = settings;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const kubelet = new SimulatedKubelet({ kubeConfig, nodes: [node], namespace, cni: { binary: ipam.binary, cniPath: ipam.cniPath, netconf: ipam.netconf, sandboxNetns: ipam.sandboxNetns } });
  await kubelet.start();
  try {
    for (let index = 0; index < count; index++) {
      await core.createNamespacedPod({ namespace, body: { metadata: { name: `fresh-${index}`, annotations: ipam.podAnnotations ?? {} }, spec: podSpec(settings.graceSeconds) } });
    }
    const deadline = Date.now() + 120_000;
    while (kubelet.listPods().filter(isRunning).length < count && Date.now() < deadline) await sleep(500);
    const running = kubelet.listPods().filter(isRunning).length;
    const holders = new Map<string, number>();
    const live: V1Pod[] = [...kubelet.listPods(), ...runs.flatMap((run) => run.kubelet.listPods())].filter(isRunning);
    for (const pod of live) for (const { ip } of pod.status?.podIPs ?? []) holders.set(ip, (holders.get(ip) ?? 0) + 1);
    const duplicates = [...holders].filter(([, holdersOfIp]) => holdersOfIp > 1).map(([ip]) => ip);
    const caseOf = (ip: string) => runs.find((run) => [...run.bystanders.values()].includes(ip) || run.tracked.some((tracked) => tracked.ip === ip))?.name;
    return { created: count, running, duplicatesByCase: (name: CaseName) => duplicates.filter((ip) => caseOf(ip) === name).length };
  } finally {
    await kubelet.stop();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    await kubelet.removeNodes();
  }
}

async function runVariant(variant: Variant, kubeConfig: KubeConfig, kubeconfigPath: string, agentSocket: string): Promise<VariantResult> {
  const tag = randomBytes(3).toString('hex');
  const prefix = `reclaim-${variant.ipam}-${tag}`;
  const nodeOf = (name: string) => `${prefix}-${name}`;
  const ips = CASES.reduce((sum, name) => sum + ipsNeeded(name, options.victims), 0);
  const ipam = await prepareIpam(variant.ipam, {
    kubeConfig,
    kubeconfigPath,
    root,
    peersDir: PEERS_DIR,
    tag,
    nodes: [...CASES.map(nodeOf), nodeOf('fresh')],
    ips,
    tidepool: { cni: path.join(root, 'dist', 'tidepool-cni'), agentSocket, spoolDir: stackPaths().cniSpool },
    spiderpool: { portBase: options.spiderpoolPortBase, gcIntervalSeconds: variant.gcIntervalSeconds },
  });
  const settings: CaseSettings = { kubeConfig, ipam, victims: options.victims, graceSeconds: options.graceSeconds };
  const reclaim = ipam.reclaim!;
  const runs: CaseRun[] = [];
  const log = (line: string) => console.error(`[${variant.label}] ${line}`);
  try {
    for (const name of CASES) runs.push(await setUpCase(settings, name, nodeOf(name), nodeOf(name)));
    await Promise.all(runs.map((run) => waitCaseRunning(run, options.victims, 180_000)));
    log(`${runs.reduce((sum, run) => sum + run.kubelet.listPods().length, 0)} pods running on ${ips} IPs; every CNI DEL is dropped from now on`);

    const concurrent = runs.filter((run) => run.name !== 'reclaimer-killed');
    // The dirty records go first, on IPs free before any case frees one: else one could land on an IP that
    // another case just freed, and hold that case's measurement up.
    const [dirty, ...others] = [...concurrent].sort((a, b) => Number(b.name === 'dirty-record') - Number(a.name === 'dirty-record'));
    const triggered = (async () => {
      await triggerCase(settings, dirty!);
      await Promise.all(others.map((run) => triggerCase(settings, run)));
    })();
    await Promise.all([triggered, watchReclaim(ipam, concurrent, options.deadlineMs, triggered)]);
    log(`concurrent cases done: ${concurrent.map((run) => `${run.name} ${run.tracked.filter((t) => t.freedAt).length}/${run.tracked.length}`).join(', ')}`);

    const killed = runs.find((run) => run.name === 'reclaimer-killed')!;
    const killedAt = Date.now();
    await reclaim.kill();
    const outage = (async () => {
      await triggerCase(settings, killed);
      await sleep(Math.max(0, killedAt + options.downtimeMs - Date.now()));
      await reclaim.restart();
      log(`${reclaim.reclaimer} SIGKILLed, ${killed.tracked.length} pods deleted, restarted after ${seconds(Date.now() - killedAt)} s`);
    })();
    await Promise.all([outage, watchReclaim(ipam, [killed], options.killDeadlineMs, outage)]);

    const freed = runs.reduce((sum, run) => sum + run.tracked.filter((tracked) => tracked.freedAt !== undefined).length, 0);
    const fresh = await freshPodsAndDuplicates(settings, runs, `${prefix}-fresh`, nodeOf('fresh'), freed);
    log(`${fresh.running}/${fresh.created} fresh pods Running on the freed IPs`);
    return {
      label: variant.label,
      ipam: variant.ipam,
      settings: settingsOf(variant),
      cases: runs.map((run) => summarize(run, run.name === 'reclaimer-killed' ? options.killDeadlineMs : options.deadlineMs, fresh.duplicatesByCase(run.name))),
      freshPods: { created: fresh.created, running: fresh.running },
    };
  } finally {
    for (const run of runs) await tearDownCase(settings, run);
    await ipam.cleanup();
  }
}

function settingsOf(variant: Variant): Record<string, string> {
  if (variant.ipam === 'tidepool') {
    const reclaimSettings = loadReclaimSettings();
    return { sweepInterval: `${reclaimSettings.sweepIntervalMs / 1000}s`, additionalGraceDelay: `${reclaimSettings.gc.additionalGraceDelayMs / 1000}s` };
  }
  return { SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: variant.gcIntervalSeconds === undefined ? 'unset (600)' : String(variant.gcIntervalSeconds) };
}

function variants(): Variant[] {
  const list: Variant[] = [];
  if (options.ipams.includes('tidepool')) list.push({ ipam: 'tidepool', label: `tidepool (sweep ${sweepMs / 1000} s, defaults)` });
  if (options.ipams.includes('spiderpool')) {
    for (const scan of options.scans) {
      const label = scan === undefined ? 'spiderpool (scan 600 s, defaults)' : `spiderpool (scan ${scan} s${scan * 1000 === sweepMs ? " = Tidepool's sweep" : ''})`;
      list.push({ ipam: 'spiderpool', label, gcIntervalSeconds: scan });
    }
  }
  return list;
}

function cell(result: CaseResult | undefined): string {
  if (!result) return 'not run';
  const parts = [result.freed > 0 ? `${result.medianSeconds} / ${result.maxSeconds} s` : `none freed within ${result.deadlineSeconds} s`];
  if (result.freed > 0 && result.notFreedByDeadline > 0) parts.push(`${result.notFreedByDeadline} of ${result.ips} not freed within ${result.deadlineSeconds} s`);
  if (result.heldTwice > 0) parts.push(`${result.heldTwice} held twice`);
  if (result.liveIPsReleased > 0) parts.push(`${result.liveIPsReleased} live pods' IPs released`);
  return parts.join('; ');
}

async function main(): Promise<void> {
  execFileSync('bash', [path.join(root, 'stack', 'build-peers.sh')], { stdio: 'inherit' });
  const missing = ipamMissing('spiderpool');
  const all = variants().filter((variant) => {
    if (variant.ipam === 'spiderpool' && missing) console.error(`bench:reclaim: skipping ${variant.label}: ${missing}`);
    return variant.ipam !== 'spiderpool' || !missing;
  });
  if (all.length === 0) throw new Error('nothing left to run');
  if (all.some((variant) => variant.ipam === 'tidepool')) await buildCni();
  const info = await up(undefined, (line) => console.error(`[stack] ${line}`), { tidepool: true });
  const kubeConfig = loadKubeConfig(info.kubeconfig);
  const agentSocket = info.agentSocket ?? stackPaths().agentSocket;
  console.error(`bench:reclaim: ${options.victims} IPs per case, grace ${options.graceSeconds} s, deadline ${options.deadlineMs / 1000} s per case (${options.killDeadlineMs / 1000} s for reclaimer-killed)`);

  // Tidepool runs beside the first Spiderpool variant; two Spiderpool controllers would reclaim each other's pools.
  const rounds: Variant[][] = [];
  for (const variant of all) {
    const round = rounds.find((candidate) => !candidate.some((other) => other.ipam === variant.ipam));
    if (round) round.push(variant);
    else rounds.push([variant]);
  }
  const results: VariantResult[] = [];
  for (const round of rounds) {
    const settled = await Promise.allSettled(round.map((variant) => runVariant(variant, kubeConfig, info.kubeconfig, agentSocket)));
    settled.forEach((outcome, index) => {
      const variant = round[index]!;
      results.push(
        outcome.status === 'fulfilled'
          ? outcome.value
          : { label: variant.label, ipam: variant.ipam, settings: settingsOf(variant), cases: [], freshPods: { created: 0, running: 0 }, error: (outcome.reason as Error).message },
      );
    });
  }

  const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`;
  const report = { date: new Date().toISOString(), machine, command: commandLine, ipsPerCase: options.victims, graceSeconds: options.graceSeconds, results };
  const out = path.resolve(root, options.args.out);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const table = markdownTable(
    ['case', ...results.map((result) => `${result.label}: median / max`)],
    CASES.map((name) => [`${name}: ${CASE_DESCRIPTIONS[name]}`, ...results.map((result) => (result.error ? `error: ${result.error.slice(0, 120)}` : cell(result.cases.find((c) => c.case === name))))]),
  );
  const totals = results.map((result) => {
    const sum = (key: 'heldTwice' | 'liveIPsReleased' | 'notFreedByDeadline') => result.cases.reduce((total, c) => total + c[key], 0);
    return `- ${result.label}: ${sum('notFreedByDeadline')} IPs not freed by their deadline, ${sum('heldTwice')} held twice, ${sum('liveIPsReleased')} live pods' IPs released; ${result.freshPods.running}/${result.freshPods.created} fresh pods ran on the freed IPs`;
  });
  const body = [
    `Measured ${report.date.slice(0, 10)} on ${machine} with \`${commandLine}\`: ${options.victims} IPs per case, pods with a ${options.graceSeconds} s grace period, every CNI DEL dropped; seconds from the pod's disappearance (the delete call, the Succeeded status, the record's write) until the IPAM's records no longer hold the IP, polled every 0.5 s; deadline ${options.deadlineMs / 1000} s per case, ${options.killDeadlineMs / 1000} s for reclaimer-killed (down ${options.downtimeMs / 1000} s).`,
    '',
    table,
    '',
    ...totals,
  ].join('\n');
  publishReport('bench:reclaim', { root, section: 'reclaim', body, written: [out], noDocs: options.args['no-docs'] });
}

runMain('bench:reclaim', main);
