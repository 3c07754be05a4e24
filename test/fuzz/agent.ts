// Fuzz property of the node agent's unix-socket API: the agent process (src/agent/main.ts) on a temp socket,
// with a Tidepool worker on a task queue of its own, against the local stack's Temporal and API server.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { AGENT_PATHS } from '../../src/contract/agent-api.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import type { StackInfo } from '../../stack/stack.ts';
import { exchange, type HttpAnswer } from './http.ts';
import { createTidepoolWorker } from '../../src/worker/worker.ts';

export interface AgentUnderFuzz {
  socketPath: string;
  taskQueue: string;
  /** A default IPPool that valid-looking requests name, so that a wrong write would have a pool to land in. */
  pool: string;
  /** The agent process's log lines. */
  log: string[];
  agentProcess: ChildProcess;
  client: Client;
  tidepool: TidepoolClient;
  stop: () => Promise<void>;
}

/** Waits for a line of the agent's JSON log with message `msg`. */
function waitForLog(log: string[], child: ChildProcess, msg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the agent exited with ${code}: ${log.join('\n')}`)));
    const check = setInterval(() => {
      if (log.some((line) => line.includes(`"msg":"${msg}"`))) {
        clearInterval(check);
        resolve();
      }
    }, 50);
  });
}

/** Starts the agent process on a temp socket and an in-process worker, both on a fresh task queue. */
export async function startAgentUnderFuzz(info: StackInfo, env: Record<string, string> = {}): Promise<AgentUnderFuzz> {
  const tag = randomBytes(4).toString('hex');
  const taskQueue = `tidepool-fuzz-${tag}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-fuzz-agent-'));
  const socketPath = path.join(dir, 'run', 'agent.sock');
  const kubeConfig = loadKubeConfig(info.kubeconfig);
  const tidepool = new TidepoolClient(kubeConfig);
  const pool = `fuzz-agent-${tag}`;
  await tidepool.createPool(pool, { subnet: '10.251.0.0/24', ips: ['10.251.0.10-10.251.0.20'], default: true }, { 'tidepool.dev/fuzz': tag });

  const workerConnection = await NativeConnection.connect({ address: info.temporalAddress });
  const { worker, run } = await createTidepoolWorker({
    connection: workerConnection,
    namespace: info.temporalNamespace,
    kubeConfig,
    settings: RECLAIM_DEFAULTS,
    shutdownGraceMs: 2000,
    taskQueue,
  });
  const running = run();
  const connection = await Connection.connect({ address: info.temporalAddress });
  const client = new Client({ connection, namespace: info.temporalNamespace });

  const agentProcess = spawn(process.execPath, [path.join(import.meta.dirname, '../../src/agent/main.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.temporalNamespace,
      TIDEPOOL_TASK_QUEUE: taskQueue,
      TIDEPOOL_AGENT_SOCKET: socketPath,
      TIDEPOOL_SPOOL_DIR: path.join(dir, 'spool'),
      TIDEPOOL_ADD_TIMEOUT: '10s',
      TIDEPOOL_DEL_TIMEOUT: '5s',
      NODE_NAME: 'fuzz-node',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  createInterface({ input: agentProcess.stdout! }).on('line', (line) => log.push(line));
  createInterface({ input: agentProcess.stderr! }).on('line', (line) => log.push(line));
  await waitForLog(log, agentProcess, 'tidepool agent listening');

  return {
    socketPath,
    taskQueue,
    pool,
    log,
    agentProcess,
    client,
    tidepool,
    stop: async () => {
      if (agentProcess.exitCode === null) {
        const exited = new Promise((resolve) => agentProcess.once('exit', resolve));
        agentProcess.kill('SIGTERM');
        await exited;
      }
      worker.shutdown();
      await running;
      await workerConnection.close();
      await connection.close();
      await tidepool.deletePool(pool).catch(() => undefined);
      const left = await tidepool.getPool(pool);
      if (left) await tidepool.replacePool({ ...left, metadata: { ...left.metadata, finalizers: [] } }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One HTTP request on the agent's socket. */
export function requestAgent(socketPath: string, method: string, target: string, body: string | Buffer): Promise<HttpAnswer> {
  return exchange({ socketPath, method, path: target, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, body);
}

const anyText = (maxLength = 40) => fc.oneof(fc.string({ maxLength }), fc.string({ unit: 'binary', maxLength }));

const field = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 20, arbitrary: valid }, { weight: 2, arbitrary: invalid }, { weight: 1, arbitrary: fc.constant(undefined) });

/** The pod name every valid-looking request carries; each run replaces it with a name of its own. */
const POD_PLACEHOLDER = 'fuzz-pod';

const agentRequest = (pool: string) =>
  fc.record({
    containerID: field(fc.constantFrom('c0ffee', 'a'.repeat(64)), fc.oneof(fc.constantFrom('-x', '../x', ''), anyText(), fc.jsonValue())),
    interface: field(fc.constantFrom('eth0', 'net1'), fc.oneof(fc.constantFrom('a-very-long-interface', '.', 'a/b', ''), anyText(20), fc.jsonValue())),
    podNamespace: field(fc.constantFrom('fuzz-ns'), fc.oneof(fc.constantFrom('a/b', 'UPPER', 'x'.repeat(64), ''), anyText(), fc.jsonValue())),
    podName: field(fc.constant(POD_PLACEHOLDER), fc.oneof(fc.constantFrom('a/b', 'x'.repeat(254), '-x', 'x.'), anyText(), fc.jsonValue())),
    podUID: field(fc.uuid(), fc.oneof(fc.constantFrom('', 'a b', 'x'.repeat(129)), anyText(), fc.jsonValue())),
    infraContainerID: fc.oneof(fc.constant(undefined), fc.constant('c0ffee'), fc.jsonValue()),
    netns: field(fc.constant('/var/run/netns/cni-1'), fc.jsonValue()),
    defaultPools: field(
      fc.record({ ipv4: field(fc.constant([pool]), fc.oneof(fc.constant(['']), fc.jsonValue())), ipv6: field(fc.constant([]), fc.jsonValue()) }),
      fc.jsonValue(),
    ),
    ips: field(fc.array(fc.constantFrom('10.251.0.10/24', 'fd00::1/64')), fc.jsonValue()),
  });

/** Bodies: requests with fields valid, mistyped or absent; any JSON; cut-short JSON; bytes; oversized. */
const agentBody = (pool: string) =>
  fc.oneof(
    { weight: 12, arbitrary: agentRequest(pool).map((request) => JSON.stringify(request)) },
    { weight: 1, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value) ?? '') },
    { weight: 1, arbitrary: fc.tuple(agentRequest(pool), fc.nat()).map(([request, cut]) => JSON.stringify(request).slice(0, cut % 200)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map((extra) => JSON.stringify({ containerID: 'c0ffee', padding: 'x'.repeat(64 * 1024 + extra * 1024) })) },
  );

const agentTarget = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(AGENT_PATHS.ADD, AGENT_PATHS.DEL, AGENT_PATHS.CHECK) },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('/healthz', '/', '/v1/cni/add/', '/v1/cni/add?x=1', '//', '/v1/cni/ADD'), fc.webPath()) },
);

const agentMethod = fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') });

interface Sent {
  method: string;
  target: string;
  body: string | Buffer;
}

/** What is wrong with an answer of the agent, if anything: it must be 200 or a 4xx CNI error. */
function answerProblem(answer: HttpAnswer): string | undefined {
  if (answer.status >= 500) return `HTTP ${answer.status}: ${answer.body}`;
  if (answer.status === 200) return undefined;
  if (answer.status < 400) return `HTTP ${answer.status}`;
  let error: { code?: unknown; msg?: unknown; details?: unknown };
  try {
    error = JSON.parse(answer.body) as typeof error;
  } catch {
    return `HTTP ${answer.status} with a body that is not JSON: ${answer.body.slice(0, 200)}`;
  }
  if (typeof error.code !== 'number' || !Number.isInteger(error.code) || typeof error.msg !== 'string' || error.msg === '') {
    return `HTTP ${answer.status} without a CNI error {code, msg}: ${answer.body.slice(0, 200)}`;
  }
  if (/Cannot read propert|is not a function|is not iterable/.test(error.msg)) return `a runtime error passed on: ${error.msg}`;
  return undefined;
}

/** The agent's answers to the requests of one fuzz run, kept to check Temporal and the pools afterwards. */
export interface AgentLedger {
  /** Lifecycle workflow IDs named by requests refused before anything reached Temporal. */
  refused: Set<string>;
  /** Lifecycle workflow IDs named by requests that got past the agent's checks. */
  accepted: Set<string>;
}

/** The lifecycle a body would name, if it names one (generated values are sometimes valid names, such as "5"). */
function lifecycleIdOf(body: string | Buffer): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    return undefined;
  }
  const { podNamespace, podName } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  return typeof podNamespace === 'string' && typeof podName === 'string' ? podLifecycleWorkflowId(podNamespace, podName) : undefined;
}

/** Every request gets 200 or a clear 4xx CNI error, and the agent process survives. */
export function agentProperty(agent: AgentUnderFuzz, ledger: AgentLedger) {
  let run = 0;
  // Pod names of their own: a lifecycle left by an earlier session (its worker gone) would not answer a query.
  const session = agent.taskQueue.split('-').at(-1);
  return fc.asyncProperty(fc.tuple(agentMethod, agentTarget, agentBody(agent.pool)), async ([method, target, body]) => {
    const podName = `${POD_PLACEHOLDER}-${session}-${run++}`;
    const sent: Sent = { method, target, body: typeof body === 'string' ? body.replace(`"${POD_PLACEHOLDER}"`, `"${podName}"`) : body };
    let answer: HttpAnswer;
    try {
      answer = await requestAgent(agent.socketPath, sent.method, sent.target, sent.body);
    } catch (error) {
      throw new Error(`no answer to ${method} ${target} (${(error as Error).message}); the agent ${agent.agentProcess.exitCode === null ? 'runs' : `exited ${agent.agentProcess.exitCode}`}`, { cause: error });
    }
    const problem = answerProblem(answer);
    if (problem) throw new Error(problem);
    if (agent.agentProcess.exitCode !== null) throw new Error(`the agent exited with ${agent.agentProcess.exitCode}`);
    const id = lifecycleIdOf(sent.body);
    if (id !== undefined) {
      const refusedBeforeTemporal = answer.status === 404 || answer.status === 413 || (answer.status === 400 && (JSON.parse(answer.body) as { code: number }).code === 4);
      (refusedBeforeTemporal ? ledger.refused : ledger.accepted).add(id);
    }
  });
}

/** Every IPPool's resourceVersion and status, to compare before and after a run. */
export async function poolSnapshot(tidepool: TidepoolClient): Promise<Map<string, string>> {
  const { items } = await tidepool.listPools();
  return new Map(items.map((pool) => [pool.metadata.name, `${pool.metadata.resourceVersion} ${JSON.stringify(pool.status ?? {})}`]));
}

/** The lifecycle workflows started on the agent's task queue (Temporal's visibility store). */
export async function lifecycleWorkflowIds(agent: AgentUnderFuzz): Promise<Set<string>> {
  await sleep(1000);
  const ids = new Set<string>();
  for await (const workflow of agent.client.workflow.list({ query: `TaskQueue = '${agent.taskQueue}'` })) ids.add(workflow.workflowId);
  return ids;
}

/** What a run left wrong in Temporal or the pools, if anything. */
export function sideEffectProblems(ledger: AgentLedger, started: Set<string>, before: Map<string, string>, after: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const id of started) {
    if (ledger.accepted.has(id)) continue;
    problems.push(ledger.refused.has(id) ? `a refused request started lifecycle ${id}` : `lifecycle ${id} was started by no request of this run`);
  }
  for (const [name, state] of before) if (after.get(name) !== state) problems.push(`IPPool ${name} was written: ${state} -> ${after.get(name)}`);
  return problems;
}
