// The local stack's orchestration: up, down and reset, one component stopped or started on its own, and
// what runs now.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildCni, CNI_BINARY } from '../scripts/build-cni.ts';
import { Connection } from '@temporalio/client';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { applyManifests, readManifests, waitForCrdsEstablished } from '../src/k8s/apply.ts';
import { ensureSearchAttributes } from '../src/temporal/search-attributes.ts';
import {
  apiServerUrl,
  components,
  localComponents,
  localTemporalAddress,
  TEMPORAL_COMPONENTS,
  tidepoolComponents,
  type ComponentName,
  type ExternalTemporal,
} from './components.ts';
import { stackConfig, stackPaths, type StackConfig, type StackPaths, type TemporalKind } from './config.ts';
import { adminToken, ensurePki } from './pki.ts';
import { logFile, runningPid, startProcess, stopProcess, waitReady, type ProcessSpec } from './processes.ts';
import { readinessChecks, temporalReady } from './readiness.ts';
import { registerStackWebhook, stackWebhookUrl, unregisterStackWebhook } from './webhook.ts';

/** What `up` writes to stack.json for tests, benchmarks and tools. */
export interface StackInfo {
  apiServer: string;
  kubeconfig: string;
  caFile: string;
  temporalAddress: string;
  temporalNamespace: string;
  /** Which Temporal serves: the dev server, the real server on PostgreSQL, or one the stack did not start. */
  temporal: TemporalKind | 'external';
  /** The Temporal UI; the real server has none here (the CLI serves a UI only with its dev server). */
  temporalUi?: string;
  dir: string;
  /** How many Tidepool workers `up` started (with `agentSocket`). */
  workers?: number;
  /** Present when `up` started Tidepool's webhook, worker and node agent too. */
  agentSocket?: string;
  webhook?: string;
}

function writeKubeconfig(config: StackConfig, paths: StackPaths): void {
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'tidepool-local', cluster: { server: apiServerUrl(config), 'certificate-authority': paths.caCert } }],
    users: [{ name: 'admin', user: { token: adminToken(paths) } }],
    contexts: [{ name: 'tidepool-local', context: { cluster: 'tidepool-local', user: 'admin' } }],
    'current-context': 'tidepool-local',
  };
  writeFileSync(paths.kubeconfig, stringify(kubeconfig), { mode: 0o600 });
}

type Log = (line: string) => void;

async function startAndWait(
  config: StackConfig,
  paths: StackPaths,
  spec: ProcessSpec,
  check: () => Promise<boolean>,
  timeoutMs: number,
  log: Log,
): Promise<void> {
  const pid = runningPid(paths, spec);
  if (pid !== undefined) {
    log(`${spec.name}: already running (pid ${pid})`);
  } else {
    log(`${spec.name}: starting, log ${logFile(paths, spec.name)}`);
    await spec.prepare?.();
    startProcess(paths, spec);
  }
  await waitReady(paths, spec, check, timeoutMs);
  if (spec.name === 'tidepool-webhook') {
    await registerStackWebhook(stackKubeConfig(paths), config, paths);
    log(`${spec.name}: ready, registered for IPPools and ReservedIPs (failurePolicy Fail, as the chart)`);
    return;
  }
  log(`${spec.name}: ready`);
}

function stackKubeConfig(paths: StackPaths): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(paths.kubeconfig);
  return kubeConfig;
}

/** Applies the tree's CRDs to the stack's API server (server-side apply) and waits until they are served. */
export async function installCrds(config: StackConfig = stackConfig, log: Log = () => {}): Promise<void> {
  const kubeConfig = stackKubeConfig(stackPaths(config));
  const crds = readManifests(config.crdDir);
  await applyManifests(kubeConfig, crds);
  await waitForCrdsEstablished(kubeConfig, crds.map((crd) => crd.metadata!.name!));
  log(`crds: ${crds.map((crd) => crd.metadata!.name).join(', ')} established`);
}

/** The most workers the stack runs; `down` and `status` look for this many. */
const MAX_WORKERS = 16;

/** The kind of Temporal whose processes run now, if any. */
export function runningTemporal(config: StackConfig = stackConfig): TemporalKind | undefined {
  const paths = stackPaths(config);
  const specs = localComponents(config, paths);
  const kinds = Object.keys(TEMPORAL_COMPONENTS) as TemporalKind[];
  return kinds.find((kind) =>
    TEMPORAL_COMPONENTS[kind].some((name) => runningPid(paths, specs.find((spec) => spec.name === name)!) !== undefined),
  );
}

/**
 * The Temporal `up` runs: the one asked for (`--temporal`, TIDEPOOL_TEMPORAL), else the one that runs now, else
 * the dev server. Asking for one while the other runs is an error: both serve on the same ports.
 */
export function chosenTemporal(config: StackConfig = stackConfig): TemporalKind {
  const running = runningTemporal(config);
  if (config.temporal !== undefined && running !== undefined && running !== config.temporal) {
    throw new Error(
      `the stack runs Temporal's ${running === 'dev' ? 'dev server' : 'real server'}, not the ${config.temporal === 'dev' ? 'dev server' : 'real server'} asked for; ` +
        '`./dev stack down` first (each keeps its own data)',
    );
  }
  return config.temporal ?? running ?? 'dev';
}

const REQUIRED_BINARIES: Record<TemporalKind, string[]> = {
  dev: ['temporal'],
  server: ['temporal-server', 'temporal-sql-tool'],
};

/**
 * Starts whatever part of the stack is not running, waits until each part is ready and installs the CRDs;
 * with `tidepool: true` also Tidepool's worker (with `workerEnv` added to its environment) and node agent;
 * with `externalTemporal`, uses that Temporal server instead of starting the dev server.
 */
export async function up(
  config: StackConfig = stackConfig,
  log: Log = () => {},
  options: { tidepool?: boolean; externalTemporal?: ExternalTemporal; workerEnv?: Record<string, string> } = {},
): Promise<StackInfo> {
  const temporalAddress = options.externalTemporal?.address ?? localTemporalAddress(config);
  const paths = stackPaths(config);
  const kind = chosenTemporal(config);
  for (const binary of ['kube-apiserver', 'kube-controller-manager', ...(options.externalTemporal ? [] : REQUIRED_BINARIES[kind])]) {
    if (!existsSync(path.join(config.binDir, binary))) {
      const setup = kind === 'server' ? 'TIDEPOOL_TEMPORAL=server bash stack/setup.sh (./dev up --temporal server does)' : 'stack/setup.sh (./dev does)';
      throw new Error(`${binary} is missing from ${config.binDir}; run ${setup} first`);
    }
  }
  mkdirSync(paths.dir, { recursive: true });
  ensurePki(paths);
  writeKubeconfig(config, paths);
  const readiness = readinessChecks(config, paths, temporalAddress);
  for (const spec of components(config, paths, kind, options.externalTemporal)) {
    const { check, timeoutMs } = readiness(spec.name as ComponentName);
    await startAndWait(config, paths, spec, check, timeoutMs, log);
  }

  if (options.externalTemporal) {
    const deadline = Date.now() + 60_000;
    while (!(await temporalReady(config, temporalAddress).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`Temporal at ${temporalAddress} was not ready within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  const connection = await Connection.connect({ address: temporalAddress });
  try {
    const added = await ensureSearchAttributes(connection, config.temporalNamespace);
    if (added.length > 0) log(`temporal: registered search attributes ${added.join(', ')}`);
  } finally {
    await connection.close();
  }

  const kubeConfig = stackKubeConfig(paths);
  await installCrds(config, log);

  if (options.tidepool) {
    // The simulated kubelet starts its node's sandboxes with the plugin built from this tree.
    await buildCni();
    log(`tidepool-cni: built at ${CNI_BINARY}`);
    for (const spec of tidepoolComponents(config, paths, temporalAddress, options.workerEnv)) {
      const { check, timeoutMs } = readiness(spec.name as ComponentName);
      await startAndWait(config, paths, spec, check, timeoutMs, log);
    }
    // Workers beyond the count asked for, from an earlier `up --workers`, stop.
    const workers = tidepoolComponents(config, paths, temporalAddress, {}, MAX_WORKERS).filter((spec) => spec.name.startsWith('tidepool-worker'));
    for (const spec of workers.slice(config.workers)) {
      if (await stopProcess(paths, spec)) log(`${spec.name}: stopped (--workers ${config.workers})`);
    }
  } else if (runningPid(paths, webhookSpec(config, paths)) === undefined) {
    // A registration left by a stack whose processes died without `down` would refuse every pool write.
    await unregisterStackWebhook(kubeConfig);
  }

  const info: StackInfo = {
    apiServer: apiServerUrl(config),
    kubeconfig: paths.kubeconfig,
    caFile: paths.caCert,
    temporalAddress,
    temporalNamespace: config.temporalNamespace,
    temporal: options.externalTemporal ? 'external' : kind,
    ...(options.externalTemporal
      ? { temporalUi: options.externalTemporal.ui }
      : kind === 'dev'
        ? { temporalUi: `http://${config.host}:${config.ports.temporalUi}` }
        : {}),
    dir: paths.dir,
    // `up` without Tidepool on a stack that runs it (a test's `up`, say) keeps saying so.
    ...(options.tidepool || tidepoolComponents(config, paths).every((spec) => runningPid(paths, spec) !== undefined)
      ? { agentSocket: paths.agentSocket, webhook: stackWebhookUrl(config), workers: runningWorkers(config, paths) }
      : {}),
  };
  writeFileSync(paths.info, `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/** Stops the processes this stack started (by pid file), last started first. Keeps their data. */
export async function down(config: StackConfig = stackConfig, log: Log = () => {}): Promise<void> {
  const paths = stackPaths(config);
  for (const spec of [...localComponents(config, paths), ...tidepoolComponents(config, paths, undefined, {}, MAX_WORKERS)].reverse()) {
    if (spec.name === 'tidepool-webhook') await unregisterWebhookIfServed(config, paths, log);
    if (await stopProcess(paths, spec)) log(`${spec.name}: stopped`);
  }
  rmSync(paths.info, { force: true });
}

function runningWorkers(config: StackConfig, paths: StackPaths): number {
  return tidepoolComponents(config, paths, undefined, {}, MAX_WORKERS).filter(
    (spec) => spec.name.startsWith('tidepool-worker') && runningPid(paths, spec) !== undefined,
  ).length;
}

function webhookSpec(config: StackConfig, paths: StackPaths): ProcessSpec {
  return tidepoolComponents(config, paths).find((spec) => spec.name === 'tidepool-webhook')!;
}

/**
 * With failurePolicy Fail, a registration whose webhook is gone refuses every IPPool write: it goes before the
 * process does. Skipped when the API server is not running (the registration then waits for the next `up`,
 * which starts the webhook before anything writes a pool).
 */
async function unregisterWebhookIfServed(config: StackConfig, paths: StackPaths, log: Log): Promise<void> {
  const apiServer = localComponents(config, paths).find((spec) => spec.name === 'kube-apiserver')!;
  if (runningPid(paths, apiServer) === undefined || !existsSync(paths.kubeconfig)) return;
  await unregisterStackWebhook(stackKubeConfig(paths));
  log('tidepool-webhook: registration removed');
}

/**
 * `down`, then removes the stack's data (etcd on tmpfs, the Temporal SQLite file, the real server's PostgreSQL
 * cluster and config, logs); keeps the PKI.
 */
export async function reset(config: StackConfig = stackConfig, log: Log = () => {}): Promise<void> {
  await down(config, log);
  const paths = stackPaths(config);
  const data = [paths.etcdData, paths.temporalDb, `${paths.temporalDb}-shm`, `${paths.temporalDb}-wal`, paths.postgresData, paths.temporalServerDir, paths.logs];
  for (const target of data) rmSync(target, { recursive: true, force: true });
  log(`data removed (${paths.etcdData}, ${paths.temporalDb}, ${paths.postgresData})`);
}

export interface ComponentStatus {
  name: string;
  pid: number | undefined;
  log: string;
}

/**
 * The stack's processes, with the Temporal that runs (else the one `up` would start); Tidepool's webhook,
 * workers, agent and kubelet are listed when they run.
 */
export function status(config: StackConfig = stackConfig): ComponentStatus[] {
  const paths = stackPaths(config);
  const tidepool = tidepoolComponents(config, paths, undefined, {}, MAX_WORKERS).filter((spec) => runningPid(paths, spec) !== undefined);
  const kind = runningTemporal(config) ?? config.temporal ?? 'dev';
  return [...components(config, paths, kind), ...tidepool].map((spec) => ({
    name: spec.name,
    pid: runningPid(paths, spec),
    log: logFile(paths, spec.name),
  }));
}

/** The running stack's connection details, or undefined when `up` has not completed. */
export function readStackInfo(config: StackConfig = stackConfig): StackInfo | undefined {
  const paths = stackPaths(config);
  if (!existsSync(paths.info)) return undefined;
  if (status(config).some((component) => component.pid === undefined)) return undefined;
  return JSON.parse(readFileSync(paths.info, 'utf8')) as StackInfo;
}

/**
 * Stops one component of a running local stack (by its pid file): SIGTERM with a grace period as `down`
 * does, or SIGKILL at once, as a crash. Returns false when it was not running.
 */
export async function stopComponent(name: ComponentName, signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT', config: StackConfig = stackConfig): Promise<boolean> {
  const paths = stackPaths(config);
  const spec = [...localComponents(config, paths), ...tidepoolComponents(config, paths, undefined, {}, MAX_WORKERS)].find((candidate) => candidate.name === name)!;
  if (name === 'tidepool-webhook') await unregisterWebhookIfServed(config, paths, () => {});
  return stopProcess(paths, spec, 10_000, signal);
}

/**
 * Starts one component of the local stack again, as `up` starts it (same arguments, log and pid file), and
 * waits until it is ready; one still running is left alone. `workerEnv` as for `up`.
 */
export async function startComponent(
  name: ComponentName,
  config: StackConfig = stackConfig,
  log: Log = () => {},
  options: { workerEnv?: Record<string, string> } = {},
): Promise<void> {
  const paths = stackPaths(config);
  const temporalAddress = localTemporalAddress(config);
  const spec = [...localComponents(config, paths), ...tidepoolComponents(config, paths, temporalAddress, options.workerEnv, MAX_WORKERS)].find(
    (candidate) => candidate.name === name,
  )!;
  const { check, timeoutMs } = readinessChecks(config, paths, temporalAddress)(name);
  await startAndWait(config, paths, spec, check, timeoutMs, log);
}
