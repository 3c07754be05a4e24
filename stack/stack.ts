import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { applyManifests, readManifests, waitForCrdsEstablished } from '../src/k8s/apply.ts';
import { TASK_QUEUE } from '../src/temporal/names.ts';
import { devServerSearchAttributeArgs, ensureSearchAttributes } from '../src/temporal/search-attributes.ts';
import { stackConfig, stackPaths, type StackConfig, type StackPaths } from './config.ts';
import { ensurePki } from './pki.ts';
import { logFile, runningPid, startProcess, stopProcess, waitReady, type ProcessSpec } from './processes.ts';
import { registerStackWebhook, stackWebhookUrl, unregisterStackWebhook } from './webhook.ts';

/** What `up` writes to stack.json for tests, benchmarks and tools. */
export interface StackInfo {
  apiServer: string;
  kubeconfig: string;
  caFile: string;
  temporalAddress: string;
  temporalNamespace: string;
  temporalUi: string;
  dir: string;
  /** Present when `up` started Tidepool's webhook, worker and node agent too. */
  agentSocket?: string;
  webhook?: string;
}

/** The controllers kube-controller-manager runs. No node-ipam-controller: Tidepool is the IPAM. */
export const CONTROLLERS = [
  'garbage-collector-controller',
  'namespace-controller',
  'replicaset-controller',
  'deployment-controller',
  'statefulset-controller',
  'daemonset-controller',
  'job-controller',
  'node-lifecycle-controller',
  'taint-eviction-controller',
  'pod-garbage-collector-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
];

export const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'temporal', 'tidepool-webhook', 'tidepool-worker', 'tidepool-agent'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

/** A Temporal server the stack does not run itself (e.g. a container started by testcontainers). */
export interface ExternalTemporal {
  address: string;
  ui: string;
}

function components(config: StackConfig, paths: StackPaths, external?: ExternalTemporal): ProcessSpec[] {
  const all = localComponents(config, paths);
  return external ? all.filter((spec) => spec.name !== 'temporal') : all;
}

function localComponents(config: StackConfig, paths: StackPaths): ProcessSpec[] {
  const { host, ports } = config;
  const bin = (name: string) => path.join(config.binDir, name);
  return [
    {
      name: 'etcd',
      command: 'etcd',
      args: [
        '--name', 'tidepool',
        '--data-dir', paths.etcdData,
        '--listen-client-urls', `http://${host}:${ports.etcdClient}`,
        '--advertise-client-urls', `http://${host}:${ports.etcdClient}`,
        '--listen-peer-urls', `http://${host}:${ports.etcdPeer}`,
        '--initial-advertise-peer-urls', `http://${host}:${ports.etcdPeer}`,
        '--initial-cluster', `tidepool=http://${host}:${ports.etcdPeer}`,
        '--quota-backend-bytes', String(4 * 1024 ** 3),
      ],
    },
    {
      name: 'kube-apiserver',
      command: bin('kube-apiserver'),
      args: [
        `--etcd-servers=http://${host}:${ports.etcdClient}`,
        `--bind-address=${host}`,
        `--advertise-address=${host}`,
        `--secure-port=${ports.apiServer}`,
        `--tls-cert-file=${paths.servingCert}`,
        `--tls-private-key-file=${paths.servingKey}`,
        `--cert-dir=${path.join(paths.dir, 'apiserver-certs')}`,
        `--client-ca-file=${paths.caCert}`,
        `--token-auth-file=${paths.tokens}`,
        '--authorization-mode=RBAC',
        `--service-account-issuer=https://${host}:${ports.apiServer}`,
        `--service-account-key-file=${paths.serviceAccountKey}`,
        `--service-account-signing-key-file=${paths.serviceAccountKey}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        '--allow-privileged=true',
        '--endpoint-reconciler-type=none',
        // /debug/pprof for benchmark profiles; it needs the admin token like every other path.
        '--profiling=true',
      ],
    },
    {
      name: 'kube-controller-manager',
      command: bin('kube-controller-manager'),
      args: [
        `--kubeconfig=${paths.kubeconfig}`,
        `--authentication-kubeconfig=${paths.kubeconfig}`,
        `--authorization-kubeconfig=${paths.kubeconfig}`,
        '--leader-elect=false',
        `--bind-address=${host}`,
        `--secure-port=${ports.controllerManager}`,
        `--tls-cert-file=${paths.servingCert}`,
        `--tls-private-key-file=${paths.servingKey}`,
        `--controllers=${CONTROLLERS.join(',')}`,
        `--service-account-private-key-file=${paths.serviceAccountKey}`,
        `--root-ca-file=${paths.caCert}`,
        '--node-monitor-period=2s',
        `--node-monitor-grace-period=${config.nodeMonitorGracePeriod}`,
        // Defaults are 20/30; the workload controllers must not be the bottleneck of the benchmarks.
        '--kube-api-qps=200',
        '--kube-api-burst=400',
        '--profiling=false',
      ],
    },
    {
      name: 'temporal',
      command: bin('temporal'),
      args: [
        'server', 'start-dev',
        '--ip', host,
        '--port', String(ports.temporal),
        '--ui-port', String(ports.temporalUi),
        '--http-port', String(ports.temporalHttp),
        '--metrics-port', String(ports.temporalMetrics),
        '--db-filename', paths.temporalDb,
        '--ui-disable-news-fetch',
        '--log-format', 'json',
        '--log-level', 'warn',
        ...devServerSearchAttributeArgs(),
      ],
    },
  ];
}

/**
 * Tidepool itself on the stack: the admission webhook, the worker and one node agent, run from source with the
 * project's Node.js. `workerEnv` adds to the worker's environment (reclaim settings, say).
 */
function tidepoolComponents(
  config: StackConfig,
  paths: StackPaths,
  temporalAddress = localTemporalAddress(config),
  workerEnv: Record<string, string> = {},
): ProcessSpec[] {
  const env = {
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: config.temporalNamespace,
    KUBECONFIG: paths.kubeconfig,
  };
  return [
    {
      name: 'tidepool-webhook',
      command: process.execPath,
      args: [path.join(config.root, 'src', 'webhook', 'main.ts')],
      match: 'webhook/main.ts',
      env: {
        KUBECONFIG: paths.kubeconfig,
        TIDEPOOL_WEBHOOK_HOST: config.host,
        TIDEPOOL_WEBHOOK_PORT: String(config.ports.webhook),
        TIDEPOOL_WEBHOOK_CERT_FILE: paths.servingCert,
        TIDEPOOL_WEBHOOK_KEY_FILE: paths.servingKey,
      },
    },
    {
      name: 'tidepool-worker',
      command: process.execPath,
      args: [path.join(config.root, 'worker', 'main.ts')],
      match: 'worker/main.ts',
      env: { ...env, TIDEPOOL_METRICS_PORT: String(config.ports.workerMetrics), ...workerEnv },
    },
    {
      name: 'tidepool-agent',
      command: process.execPath,
      args: [path.join(config.root, 'src', 'agent', 'main.ts')],
      match: 'agent/main.ts',
      env: { ...env, TIDEPOOL_AGENT_SOCKET: paths.agentSocket, TIDEPOOL_SPOOL_DIR: paths.cniSpool, NODE_NAME: 'local' },
    },
  ];
}

function unixSocketStatus(socketPath: string, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath, path: urlPath, timeout: 2000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

function localTemporalAddress(config: StackConfig): string {
  return `${config.host}:${config.ports.temporal}`;
}

/**
 * Whether the worker process `pid` polls the task queue. Temporal lists a poller for minutes after its process
 * died, so any poller would do for a first start but not after a crash: the SDK's identity is `<pid>@<host>`.
 */
async function workerPolling(config: StackConfig, address: string, pid: number | undefined): Promise<boolean> {
  if (pid === undefined) return false;
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  try {
    const queue = await connection.workflowService.describeTaskQueue({
      namespace: config.temporalNamespace,
      taskQueue: { name: TASK_QUEUE },
    });
    return (queue.pollers ?? []).some((poller) => poller.identity?.startsWith(`${pid}@`));
  } finally {
    await connection.close();
  }
}

function adminToken(paths: StackPaths): string {
  return readFileSync(paths.adminToken, 'utf8').trim();
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

function apiServerUrl(config: StackConfig): string {
  return `https://${config.host}:${config.ports.apiServer}`;
}

function httpsStatus(url: string, ca: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      { ca, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 2000 },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

function httpBody(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { timeout: 2000 }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

async function temporalReady(config: StackConfig, address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  try {
    await connection.workflowService.getSystemInfo({});
    await connection.workflowService.describeNamespace({ namespace: config.temporalNamespace });
    return true;
  } finally {
    await connection.close();
  }
}

interface Readiness {
  check: () => Promise<boolean>;
  timeoutMs: number;
}

/** How to tell that each component is ready to serve, and how long it may take to get there. */
function readinessChecks(config: StackConfig, paths: StackPaths, temporalAddress: string): Record<ComponentName, Readiness> {
  const ca = readFileSync(paths.caCert, 'utf8');
  const token = adminToken(paths);
  return {
    etcd: {
      check: async () =>
        (JSON.parse(await httpBody(`http://${config.host}:${config.ports.etcdClient}/health`)) as { health?: string })
          .health === 'true',
      timeoutMs: 30_000,
    },
    'kube-apiserver': {
      check: async () => (await httpsStatus(`${apiServerUrl(config)}/readyz`, ca, token)) === 200,
      timeoutMs: 90_000,
    },
    'kube-controller-manager': {
      check: async () =>
        (await httpsStatus(`https://${config.host}:${config.ports.controllerManager}/healthz`, ca)) === 200,
      timeoutMs: 60_000,
    },
    temporal: { check: () => temporalReady(config, temporalAddress), timeoutMs: 60_000 },
    'tidepool-worker': {
      check: () => workerPolling(config, temporalAddress, runningPid(paths, tidepoolComponents(config, paths).find((spec) => spec.name === 'tidepool-worker')!)),
      timeoutMs: 120_000,
    },
    'tidepool-agent': { check: async () => (await unixSocketStatus(paths.agentSocket, '/healthz')) === 200, timeoutMs: 30_000 },
    // Any HTTP answer means it serves TLS with the stack's certificate (a GET is no AdmissionReview: 400).
    'tidepool-webhook': { check: async () => (await httpsStatus(`${stackWebhookUrl(config)}/validate`, ca)) > 0, timeoutMs: 30_000 },
  };
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
  for (const binary of ['kube-apiserver', 'kube-controller-manager', 'temporal']) {
    if (!existsSync(path.join(config.binDir, binary))) {
      throw new Error(`${binary} is missing from ${config.binDir}; run stack/setup.sh (./dev does) first`);
    }
  }
  mkdirSync(paths.dir, { recursive: true });
  ensurePki(paths);
  writeKubeconfig(config, paths);
  const readiness = readinessChecks(config, paths, temporalAddress);
  for (const spec of components(config, paths, options.externalTemporal)) {
    const { check, timeoutMs } = readiness[spec.name as ComponentName];
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
  const crds = readManifests(config.crdDir);
  await applyManifests(kubeConfig, crds);
  await waitForCrdsEstablished(kubeConfig, crds.map((crd) => crd.metadata!.name!));
  log(`crds: ${crds.map((crd) => crd.metadata!.name).join(', ')} established`);

  if (options.tidepool) {
    for (const spec of tidepoolComponents(config, paths, temporalAddress, options.workerEnv)) {
      const { check, timeoutMs } = readiness[spec.name as ComponentName];
      await startAndWait(config, paths, spec, check, timeoutMs, log);
    }
  }

  const info: StackInfo = {
    apiServer: apiServerUrl(config),
    kubeconfig: paths.kubeconfig,
    caFile: paths.caCert,
    temporalAddress,
    temporalNamespace: config.temporalNamespace,
    temporalUi: options.externalTemporal?.ui ?? `http://${config.host}:${config.ports.temporalUi}`,
    dir: paths.dir,
    ...(options.tidepool ? { agentSocket: paths.agentSocket, webhook: stackWebhookUrl(config) } : {}),
  };
  writeFileSync(paths.info, `${JSON.stringify(info, null, 2)}\n`);
  return info;
}

/** Stops the processes this stack started (by pid file), last started first. Keeps their data. */
export async function down(config: StackConfig = stackConfig, log: Log = () => {}): Promise<void> {
  const paths = stackPaths(config);
  for (const spec of [...components(config, paths), ...tidepoolComponents(config, paths)].reverse()) {
    if (spec.name === 'tidepool-webhook') await unregisterWebhookIfServed(config, paths, log);
    if (await stopProcess(paths, spec)) log(`${spec.name}: stopped`);
  }
  rmSync(paths.info, { force: true });
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

/** `down`, then removes the stack's data (etcd on tmpfs, the Temporal SQLite file, logs); keeps the PKI. */
export async function reset(config: StackConfig = stackConfig, log: Log = () => {}): Promise<void> {
  await down(config, log);
  const paths = stackPaths(config);
  for (const target of [paths.etcdData, paths.temporalDb, `${paths.temporalDb}-shm`, `${paths.temporalDb}-wal`, paths.logs]) {
    rmSync(target, { recursive: true, force: true });
  }
  log(`data removed (${paths.etcdData}, ${paths.temporalDb})`);
}

export interface ComponentStatus {
  name: string;
  pid: number | undefined;
  log: string;
}

/** The stack's processes; Tidepool's worker and agent are listed when they run. */
export function status(config: StackConfig = stackConfig): ComponentStatus[] {
  const paths = stackPaths(config);
  const tidepool = tidepoolComponents(config, paths).filter((spec) => runningPid(paths, spec) !== undefined);
  return [...components(config, paths), ...tidepool].map((spec) => ({
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
export async function stopComponent(name: ComponentName, signal: 'SIGTERM' | 'SIGKILL', config: StackConfig = stackConfig): Promise<boolean> {
  const paths = stackPaths(config);
  const spec = [...localComponents(config, paths), ...tidepoolComponents(config, paths)].find((candidate) => candidate.name === name)!;
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
  const spec = [...localComponents(config, paths), ...tidepoolComponents(config, paths, temporalAddress, options.workerEnv)].find(
    (candidate) => candidate.name === name,
  )!;
  const { check, timeoutMs } = readinessChecks(config, paths, temporalAddress)[name];
  await startAndWait(config, paths, spec, check, timeoutMs, log);
}
