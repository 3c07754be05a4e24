// How the stack tells that each component is ready to serve: one check per component, over small HTTP,
// HTTPS, unix-socket and Temporal probes.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import { Connection } from '@temporalio/client';
import { TASK_QUEUE } from '../src/temporal/names.ts';
import { apiServerUrl, STACK_NODE, tidepoolComponents, type ComponentName } from './components.ts';
import type { StackConfig, StackPaths } from './config.ts';
import { adminToken } from './pki.ts';
import { runningPid } from './processes.ts';
import { stackWebhookUrl } from './webhook.ts';

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
export function readinessChecks(config: StackConfig, paths: StackPaths, temporalAddress: string): Record<ComponentName, Readiness> {
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
    'tidepool-kubelet': { check: () => nodeReady(config, STACK_NODE, ca, token), timeoutMs: 30_000 },
    // Any HTTP answer means it serves TLS with the stack's certificate (a GET is no AdmissionReview: 400).
    'tidepool-webhook': { check: async () => (await httpsStatus(`${stackWebhookUrl(config)}/validate`, ca)) > 0, timeoutMs: 30_000 },
  };
}
