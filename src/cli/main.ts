#!/usr/bin/env node
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { ApplicationFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { reservedSets } from '../ipam/reserved.ts';
import { loadCommonConfig } from '../config.ts';
import { loadReclaimSettings } from '../gc/config.ts';
import type { SweepReport } from '../gc/plan.ts';
import { gcScheduleId } from '../gc/schedule.ts';
import { judgeCluster } from '../gc/snapshot.ts';
import { canonicalIP, parseIP } from '../ipam/ip.ts';
import { ipSetOf, poolAddresses, poolFamily } from '../ipam/pool.ts';
import type { SweepScope } from '../contract/pools.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeGetOptional } from '../k8s/errors.ts';
import { loadKubeConfig } from '../k8s/kubeconfig.ts';
import { TidepoolState } from '../temporal/names.ts';
import { stateQuery, type LifecycleSnapshot } from '../contract/lifecycle.ts';
import { countsText, table } from './format.ts';

const USAGE = `usage:
  tidepool status [--pool NAME] [-a] [-o json]   pools: total, allocated, free, reserved, zombie candidates, unrecorded, conflicts; -a: every IP
  tidepool gc [--dry-run] [--pool NAME]... [--namespace NAME]... [-o json]
                                                 run a GC sweep and print its report: of the whole cluster (through the
                                                 tidepool-gc Schedule), or of the named pools' and namespaces' records
  tidepool history IP|NAMESPACE/POD [-o json]    every lifecycle that held the IP or pod, with times and reasons
status and gc --pool/--namespace also take kubectl's --kubeconfig FILE and --context NAME; as a kubectl plugin: kubectl tidepool ...
environment: KUBECONFIG, TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_NAMESPACE (default), TEMPORAL_TLS*, TEMPORAL_API_KEY, TIDEPOOL_TASK_QUEUE (tidepool), TIDEPOOL_CONFIG
exit codes: 0 done, 1 failed, 2 usage (also a pool or namespace that does not exist), 3 nothing found`;

/** The command line is wrong: exit 2 with the usage. */
class UsageError extends Error {}
/** The command line names something that does not exist (a pool, a namespace): exit 2. */
class UnknownNameError extends Error {}
const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;

function print(json: boolean, data: unknown, text: string): void {
  process.stdout.write(`${json ? JSON.stringify(data, null, 2) : text}\n`);
}

async function temporal<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const { temporalAddress, temporalConnection, temporalNamespace } = loadCommonConfig();
  const connection = await Connection.connect({ ...temporalConnection, connectTimeout: 5000 }).catch((error: unknown) => {
    throw new Error(`cannot reach Temporal at ${temporalAddress}: ${(error as Error).message}`);
  });
  try {
    return await fn(new Client({ connection, namespace: temporalNamespace }));
  } finally {
    await connection.close();
  }
}

/** The cluster a command reads: kubectl's own `--kubeconfig` and `--context`, else KUBECONFIG and its current context. */
interface KubeTarget {
  kubeconfig?: string;
  context?: string;
}

const loadTarget = (target: KubeTarget) => loadKubeConfig(target.kubeconfig ?? process.env.KUBECONFIG, target.context);

async function status(options: { pool?: string; all: boolean; json: boolean; target: KubeTarget }): Promise<number> {
  const kubeConfig = loadTarget(options.target);
  const client = new TidepoolClient(kubeConfig);
  const settings = loadReclaimSettings();
  const plan = await judgeCluster(kubeConfig, settings.gc);
  const pools = (await client.listPools()).items.filter((p) => !options.pool || p.metadata.name === options.pool);
  if (options.pool && pools.length === 0) throw new UnknownNameError(`IPPool ${options.pool} does not exist`);
  const reserved = reservedSets((await client.reservedIPs.list()).items);
  const zombies = new Map(plan.reclaims.flatMap((r) => r.ips.map((ip) => [`${ip.pool}/${ip.ip}`, r.reason] as const)));

  const summary = pools.map((pool) => {
    const addresses = poolAddresses(pool.metadata.name, pool.spec);
    const records = pool.status?.allocatedIPs ?? {};
    const total = addresses.allocatable.size();
    // A reserved IP that a pod still holds counts as allocated, not as reserved too.
    const reservedCount = addresses.allocatable.intersect(reserved[poolFamily(pool.spec)]).subtract(ipSetOf(addresses.family, Object.keys(records))).size();
    const allocated = Object.keys(records).length;
    const candidates = Object.keys(records).filter((ip) => zombies.has(`${pool.metadata.name}/${ip}`)).length;
    const unrecorded = plan.unrecorded.filter((u) => u.pool === pool.metadata.name);
    const conflicts = plan.conflicts.filter((c) => c.pool === pool.metadata.name);
    const free = addresses.allocatable.subtract(reserved[addresses.family]).subtract(ipSetOf(addresses.family, Object.keys(records))).size();
    return {
      pool: pool.metadata.name,
      subnet: pool.spec.subnet,
      total: total.toString(),
      allocated,
      free: free.toString(),
      reserved: reservedCount.toString(),
      zombieCandidates: candidates,
      unrecorded: unrecorded.length,
      conflicts: conflicts.length,
      ...(pool.metadata.deletionTimestamp ? { terminating: true } : {}),
      ...(options.all
        ? {
            ips: Object.entries(records)
              .sort(([a], [b]) => (parseIP(a).value < parseIP(b).value ? -1 : 1))
              .map(([ip, record]) => ({ ip, ...record, verdict: zombies.get(`${pool.metadata.name}/${ip}`) ?? 'keep' })),
            unrecordedIPs: unrecorded,
            conflictIPs: conflicts,
          }
        : {}),
    };
  });
  const lines = [
    table(
      ['POOL', 'SUBNET', 'TOTAL', 'ALLOCATED', 'FREE', 'RESERVED', 'ZOMBIE CANDIDATES', 'UNRECORDED', 'CONFLICTS'],
      summary.map((s) => [s.pool + (s.terminating ? ' (terminating)' : ''), s.subnet, s.total, s.allocated, s.free, s.reserved, s.zombieCandidates, s.unrecorded, s.conflicts]),
    ),
  ];
  if (options.all) {
    for (const s of summary) {
      lines.push('', `${s.pool}:`, table(['IP', 'POD', 'POD UID', 'NODE', 'INTERFACE', 'ALLOCATED AT', 'VERDICT'],
        (s.ips ?? []).map((i) => [i.ip, i.pod, i.podUID, i.node ?? '', i.interface ?? '', i.allocatedAt ?? '', i.verdict])));
      lines.push(...unrecordedLines({ unrecorded: s.unrecordedIPs ?? [] }), ...conflictLines({ conflicts: s.conflictIPs ?? [] }));
    }
  }
  print(options.json, summary, lines.join('\n'));
  return EXIT.ok;
}

/** Every pool and namespace the sweep is aimed at must exist: a typo must not sweep nothing and say done. */
async function checkScope(scope: SweepScope, target: KubeTarget): Promise<void> {
  if (!scope.pools && !scope.namespaces) return;
  const kubeConfig = loadTarget(target);
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (const pool of scope.pools ?? []) {
    if (!(await tidepool.getPool(pool))) throw new UnknownNameError(`IPPool ${pool} does not exist`);
  }
  for (const namespace of scope.namespaces ?? []) {
    if (!(await kubeGetOptional(`get namespace ${namespace}`, () => core.readNamespace({ name: namespace })))) {
      throw new UnknownNameError(`namespace ${namespace} does not exist`);
    }
  }
}

async function gc(options: { dryRun: boolean; scope: SweepScope; json: boolean; target: KubeTarget }): Promise<number> {
  const { taskQueue } = loadCommonConfig();
  const scheduleId = gcScheduleId(taskQueue);
  if ((options.target.kubeconfig || options.target.context) && !options.scope.pools && !options.scope.namespaces) {
    throw new UsageError('gc reads the cluster only to check --pool and --namespace; --kubeconfig and --context need one of them');
  }
  await checkScope(options.scope, options.target);
  const aimed = Boolean(options.scope.pools || options.scope.namespaces);
  const report = await temporal(async (client) => {
    if (options.dryRun || aimed) {
      // The Schedule's sweeps are of the whole cluster; a dry or aimed one runs on its own.
      return client.workflow.execute('gcSweep', {
        taskQueue,
        workflowId: `${scheduleId}-${options.dryRun ? 'dry-run' : 'aimed'}-${new Date().toISOString()}`,
        args: [{ dryRun: options.dryRun, ...options.scope }],
      }) as Promise<SweepReport>;
    }
    const schedule = client.schedule.getHandle(scheduleId);
    const before = new Set((await schedule.describe()).info.recentActions.map((a) => a.action.workflow.workflowId));
    await schedule.trigger('SKIP');
    for (let attempt = 0; attempt < 100; attempt++) {
      const info = (await schedule.describe()).info;
      const started = [...info.runningActions, ...info.recentActions.map((a) => a.action)].find((a) => !before.has(a.workflow.workflowId));
      const running = started ?? info.runningActions[0];
      if (running) return client.workflow.getHandle(running.workflow.workflowId).result() as Promise<SweepReport>;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`the ${scheduleId} Schedule started no sweep; is it paused? (temporal schedule describe -s ${scheduleId})`);
  });
  print(
    options.json,
    report,
    [
      `GC sweep${report.scope ? ` of ${scopeText(report.scope)}` : ''}${report.dryRun ? ' (dry run: nothing changed)' : ''}`,
      `scanned    ${report.scanned.records} records, ${report.scanned.endpoints} PodEndpoints`,
      `${report.dryRun ? 'would reclaim' : 'reclaimed '} ${countsText(report.reclaimed)}`,
      `waiting    ${countsText(report.waiting)}`,
      `kept       ${countsText(report.kept)}`,
      `unrecorded ${report.unrecorded.length} (held by a live pod, recorded in no pool; ${report.dryRun ? 'would be' : 'were'} recorded again where a PodEndpoint names them)`,
      `conflicts  ${report.conflicts.length} (IPs held by more than one live pod; never released by a sweep)`,
      ...(report.reclaims.length > 0
        ? ['', table(['POD', 'POD UID', 'REASON', 'IPS'], report.reclaims.map((r) => [`${r.namespace}/${r.pod}`, r.podUID, r.reason, r.ips.map((i) => `${i.ip} (${i.pool})`).join(', ')]))]
        : []),
      ...unrecordedLines(report),
      ...conflictLines(report),
    ].join('\n'),
  );
  return EXIT.ok;
}

function scopeText(scope: SweepScope): string {
  return [
    ...(scope.pools ? [`IPPool${scope.pools.length > 1 ? 's' : ''} ${scope.pools.join(', ')}`] : []),
    ...(scope.namespaces ? [`namespace${scope.namespaces.length > 1 ? 's' : ''} ${scope.namespaces.join(', ')}`] : []),
  ].join(' in ');
}

function unrecordedLines(report: Pick<SweepReport, 'unrecorded'>): string[] {
  if (report.unrecorded.length === 0) return [];
  return ['', 'unrecorded:', table(['IP', 'POOL', 'POD', 'POD UID', 'INTERFACE', 'FROM'], report.unrecorded.map((u) => [u.ip, u.pool, u.pod, u.podUID, u.interface, u.source]))];
}

function conflictLines(report: Pick<SweepReport, 'conflicts'>): string[] {
  if (report.conflicts.length === 0) return [];
  return ['', 'conflicts:', table(['IP', 'POOL', 'PODS'], report.conflicts.map((c) => [c.ip, c.pool, c.holders.map((h) => `${h.pod} (${h.podUID})`).join(', ')]))];
}

async function history(subject: string, json: boolean): Promise<number> {
  let query: string;
  if (/^[a-z0-9.-]+\/[a-z0-9.-]+$/.test(subject)) {
    query = `WorkflowType = 'podIPLifecycle' AND TidepoolPod = '${subject}'`;
  } else {
    let ip: string;
    try {
      ip = canonicalIP(subject);
    } catch {
      throw new UsageError(`${subject} is neither an IP address nor NAMESPACE/POD`);
    }
    query = `WorkflowType = 'podIPLifecycle' AND TidepoolIPs = '${ip}'`;
  }
  const rows = await temporal(async (client) => {
    const found = [];
    for await (const execution of client.workflow.list({ query })) {
      const handle = client.workflow.getHandle(execution.workflowId, execution.runId);
      let snapshot: LifecycleSnapshot | undefined;
      try {
        snapshot = execution.status.name === 'RUNNING' ? await handle.query(stateQuery) : ((await handle.result()) as LifecycleSnapshot);
      } catch (error) {
        // A lifecycle whose every ADD failed ends as a failed workflow, with its snapshot in the failure's details.
        snapshot = error instanceof WorkflowFailedError && error.cause instanceof ApplicationFailure ? (error.cause.details?.[0] as LifecycleSnapshot | undefined) : undefined;
      }
      found.push({
        workflowId: execution.workflowId,
        runId: execution.runId,
        status: execution.status.name,
        started: execution.startTime.toISOString(),
        closed: execution.closeTime?.toISOString() ?? '',
        state: snapshot?.state ?? execution.typedSearchAttributes.get(TidepoolState) ?? '',
        podUID: snapshot?.podUID ?? '',
        ips: snapshot?.ipsEverHeld ?? [],
        reason: snapshot?.releaseReason ?? snapshot?.lastReason ?? '',
      });
    }
    return found.sort((a, b) => a.started.localeCompare(b.started));
  });
  if (rows.length === 0) {
    print(json, [], `no lifecycle of ${subject} found (query: ${query})`);
    return EXIT.notFound;
  }
  print(json, rows, table(['WORKFLOW', 'STARTED', 'CLOSED', 'STATE', 'POD UID', 'IPS', 'REASON'],
    rows.map((r) => [r.workflowId, r.started, r.closed || '(running)', r.state, r.podUID, r.ips.join(','), r.reason])));
  return EXIT.ok;
}

const OUTPUT = { output: { type: 'string', short: 'o' } } as const;
/** kubectl's flags for the cluster, as a kubectl plugin receives them after its name. */
const KUBE = { kubeconfig: { type: 'string' }, context: { type: 'string' } } as const;
/** Each command's own flags: a flag another command takes is an error here, never silently ignored. */
const FLAGS = {
  status: { ...OUTPUT, ...KUBE, pool: { type: 'string' }, all: { type: 'boolean', short: 'a', default: false } },
  gc: { ...OUTPUT, ...KUBE, 'dry-run': { type: 'boolean', default: false }, pool: { type: 'string', multiple: true }, namespace: { type: 'string', multiple: true } },
  history: OUTPUT,
} as const satisfies Record<string, ParseArgsConfig['options']>;

const targetOf = (values: { kubeconfig?: string; context?: string }): KubeTarget => ({
  ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
  ...(values.context !== undefined ? { context: values.context } : {}),
});

function parse<T extends ParseArgsConfig['options']>(command: string, args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
}

function outputJson(command: string, output: string | undefined): boolean {
  if (output !== undefined && output !== 'json') throw new UsageError(`${command}: -o takes json, not ${output}`);
  return output === 'json';
}

function noPositionals(command: string, positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`${command} takes no argument ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'help' || command === '--help' || command === '-h' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  switch (command) {
    case 'status': {
      const { values, positionals } = parse(command, rest, FLAGS.status);
      noPositionals(command, positionals);
      return status({ ...(values.pool ? { pool: values.pool } : {}), all: values.all, json: outputJson(command, values.output), target: targetOf(values) });
    }
    case 'gc': {
      const { values, positionals } = parse(command, rest, FLAGS.gc);
      noPositionals(command, positionals);
      const scope = { ...(values.pool ? { pools: [...new Set(values.pool)] } : {}), ...(values.namespace ? { namespaces: [...new Set(values.namespace)] } : {}) };
      return gc({ dryRun: values['dry-run'], scope, json: outputJson(command, values.output), target: targetOf(values) });
    }
    case 'history': {
      const { values, positionals } = parse(command, rest, FLAGS.history);
      if (positionals.length !== 1) throw new UsageError('history takes one IP or NAMESPACE/POD');
      return history(positionals[0]!, outputJson(command, values.output));
    }
    default:
      throw new UsageError(command ? `unknown command ${command}` : 'no command');
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      const usage = error instanceof UsageError;
      process.stderr.write(`tidepool: ${(error as Error).message}${usage ? `\n${USAGE}` : ''}\n`);
      process.exit(usage || error instanceof UnknownNameError ? EXIT.usage : EXIT.failed);
    },
  );
}
