// How the stack tells that each component is ready to serve: one check per component, over small HTTP,
// HTTPS, unix-socket and Temporal probes.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import https from 'node:https';
import http from 'node:http';
import { Connection, isGrpcServiceError } from '@temporalio/client';
import { TASK_QUEUE } from '../src/temporal/names.ts';
import { apiServerUrl, STACK_NODE, workerName, type ComponentName } from './components.ts';
import type { StackConfig, StackPaths } from './config.ts';
import { adminToken } from './pki.ts';
import { runningPid } from './processes.ts';
import { stackWebhookUrl } from './webhook.ts';
import { postgresBinDir } from './temporal-server.ts';

const execFileAsync = promisify(execFile);
/** gRPC's NOT_FOUND status code. */
const GRPC_NOT_FOUND = 5;

/** Whether the stack's PostgreSQL accepts connections (pg_isready: not while it starts up or recovers). */
async function postgresReady(config: StackConfig): Promise<boolean> {
  await execFileAsync(path.join(postgresBinDir(), 'pg_isready'), ['-q', '-h', config.host, '-p', String(config.ports.postgres)]);
  return true;
}

/** How long the real server keeps a closed workflow of the namespace it registers: the dev server's default. */
const NAMESPACE_RETENTION = '24h';

/**
 * Whether the real Temporal server serves the stack's namespace; registers it when it is missing (the dev
 * server makes `default` itself, the real server does not).
 */
async function temporalServerReady(config: StackConfig, address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 2000 });
  try {
    await connection.workflowService.getSystemInfo({});
    try {
      await connection.workflowService.describeNamespace({ namespace: config.temporalNamespace });
    } catch (error) {
      if (!isGrpcServiceError(error) || error.code !== GRPC_NOT_FOUND) throw error;
      await registerNamespace(config, address);
      return false;
    }
    // A namespace just registered is in the database before it is in every service's namespace cache.
    await connection.operatorService.listSearchAttributes({ namespace: config.temporalNamespace });
    return true;
  } finally {
    await connection.close();
  }
}

async function registerNamespace(config: StackConfig, address: string): Promise<void> {
  // The Temporal CLI, as an operator would (the SDK's request wants a protobuf Long for the retention).
  await execFileAsync(path.join(config.binDir, 'temporal'), [
    'operator', 'namespace', 'create', '--address', address, '--retention', NAMESPACE_RETENTION, '--namespace', config.temporalNamespace,
  ]).catch((error: unknown) => {
    if (!String((error as { stderr?: string }).stderr).includes('already')) throw error;
  });
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

function httpsGet(url: string, ca: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      { ca, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 2000 },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

const httpsStatus = async (url: string, ca: string, token?: string): Promise<number> => (await httpsGet(url, ca, token)).status;

/** Whether the Node's Ready condition is True. */
async function nodeReady(config: StackConfig, name: string, ca: string, token: string): Promise<boolean> {
  const { status, body } = await httpsGet(`${apiServerUrl(config)}/api/v1/nodes/${name}`, ca, token);
  if (status !== 200) return false;
  const node = JSON.parse(body) as { status?: { conditions?: { type: string; status: string }[] } };
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
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

export async function temporalReady(config: StackConfig, address: string): Promise<boolean> {
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
export function readinessChecks(config: StackConfig, paths: StackPaths, temporalAddress: string): (name: ComponentName) => Readiness {
  const ca = readFileSync(paths.caCert, 'utf8');
  const token = adminToken(paths);
  const worker = (name: ComponentName): Readiness => ({
    check: () => workerPolling(config, temporalAddress, runningPid(paths, { name, command: process.execPath, match: 'worker/main.ts' })),
    timeoutMs: 120_000,
  });
  const checks: Record<Exclude<ComponentName, `tidepool-worker-${number}`>, Readiness> = {
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
    postgres: { check: () => postgresReady(config), timeoutMs: 60_000 },
    'temporal-server': { check: () => temporalServerReady(config, temporalAddress), timeoutMs: 120_000 },
    'tidepool-worker': worker(workerName(1)),
    'tidepool-agent': { check: async () => (await unixSocketStatus(paths.agentSocket, '/healthz')) === 200, timeoutMs: 30_000 },
    'tidepool-kubelet': { check: () => nodeReady(config, STACK_NODE, ca, token), timeoutMs: 30_000 },
    // Any HTTP answer means it serves TLS with the stack's certificate (a GET is no AdmissionReview: 400).
    'tidepool-webhook': { check: async () => (await httpsStatus(`${stackWebhookUrl(config)}/validate`, ca)) > 0, timeoutMs: 30_000 },
  };
  return (name) => (name.startsWith('tidepool-worker-') ? worker(name) : checks[name as keyof typeof checks]);
}
