import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { serveAgent } from '../../src/agent/server.ts';
import { createController } from '../../src/controller/controller.ts';
import type { TidepoolMetrics } from '../../src/metrics.ts';
import type { PoolWriter } from '../../src/store/pool-writer.ts';
import { RECLAIM_DEFAULTS, type ReclaimSettings } from '../../src/gc/config.ts';
import { createTidepoolWorker } from '../../src/worker/worker.ts';
import { kubeConfig, stack, suiteSelector } from './cluster.ts';

export interface TidepoolUnderTest {
  taskQueue: string;
  socketPath: string;
  spoolDir: string;
  client: Client;
  agent: Agent;
  writer: PoolWriter;
  metrics: TidepoolMetrics;
  /** Stops the node agent only (its socket goes away), as when the agent's pod is down. */
  stopAgent: () => Promise<void>;
  stop: () => Promise<void>;
}

/**
 * Runs the Tidepool worker and a node agent in this process against the stack, on a task queue of their
 * own so that test files never see each other's workflows.
 */
export async function startTidepool(
  options: { settings?: Partial<ReclaimSettings>; addTimeoutMs?: number; controller?: boolean; taskQueue?: string; nodeName?: string } = {},
): Promise<TidepoolUnderTest> {
  const info = stack();
  const taskQueue = options.taskQueue ?? `tidepool-test-${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-agent-'));
  const socketPath = path.join(dir, 'agent.sock');
  const spoolDir = path.join(dir, 'spool');

  const workerConnection = await NativeConnection.connect({ address: info.temporalAddress });
  const { worker, writer, metrics, run } = await createTidepoolWorker({
    connection: workerConnection,
    namespace: info.temporalNamespace,
    kubeConfig: kubeConfig(),
    settings: { ...RECLAIM_DEFAULTS, namespaceSelector: suiteSelector(), ...options.settings },
    shutdownGraceMs: 5000,
    taskQueue,
  });
  const running = run();

  const connection = await Connection.connect({ address: info.temporalAddress });
  const client = new Client({ connection, namespace: info.temporalNamespace });
  const agent = createAgent({
    client,
    temporalAddress: info.temporalAddress,
    nodeName: options.nodeName ?? '',
    addTimeoutMs: options.addTimeoutMs ?? 30_000,
    delTimeoutMs: 10_000,
    spoolDir,
    taskQueue,
  });
  const server = await serveAgent(agent, socketPath, (error) => console.error('agent error', error));
  const stopAgent = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  const controller = options.controller
    ? createController({ kubeConfig: kubeConfig(), client, taskQueue, gc: { ...RECLAIM_DEFAULTS.gc, ...options.settings?.gc }, namespaceSelector: options.settings?.namespaceSelector ?? suiteSelector() })
    : undefined;
  await controller?.start();

  return {
    taskQueue,
    socketPath,
    spoolDir,
    client,
    agent,
    writer,
    metrics,
    stopAgent,
    stop: async () => {
      await controller?.stop();
      await stopAgent();
      worker.shutdown();
      await running;
      await workerConnection.close();
      await connection.close();
    },
  };
}

export const CNI_BINARY = path.resolve(import.meta.dirname, '../../dist/tidepool-cni');

export interface CniRun {
  code: number;
  stdout: string;
  json: Record<string, unknown> | undefined;
}

/** Runs tidepool-cni as a container runtime does: a separate process, CNI_* environment, netconf on stdin. */
export function runCni(command: string, env: Record<string, string>, stdin: string): Promise<CniRun> {
  return new Promise((resolve) => {
    const child = execFile(
      CNI_BINARY,
      [],
      { env: { PATH: process.env.PATH ?? '', CNI_COMMAND: command, CNI_PATH: '/opt/cni/bin', ...env }, timeout: 60_000 },
      (error, stdout) => {
        let json: Record<string, unknown> | undefined;
        try {
          json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
        } catch {
          json = undefined;
        }
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, json });
      },
    );
    child.stdin!.end(stdin);
  });
}

export function netconf(socketPath: string, spoolDir: string, ipam: Record<string, unknown> = {}, cniVersion = '1.0.0'): string {
  return JSON.stringify({
    cniVersion,
    name: 'underlay',
    type: 'macvlan',
    master: 'eth0',
    ipam: { type: 'tidepool', agent_socket: socketPath, spool_dir: spoolDir, ...ipam },
  });
}

export function cniEnv(pod: { namespace: string; name: string; uid: string }, containerID: string, interfaceName = 'eth0') {
  return {
    CNI_CONTAINERID: containerID,
    CNI_NETNS: `/var/run/netns/cni-${containerID.slice(0, 12)}`,
    CNI_IFNAME: interfaceName,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${containerID};K8S_POD_UID=${pod.uid}`,
  };
}
