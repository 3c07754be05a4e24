// The client side of the agent's unix-socket HTTP API (agent-api.ts): one POST per CNI command, under a
// deadline, with every way the call can fail turned into the CNI error to report.
import { request } from 'node:http';
import { isIP } from 'node:net';
import {
  AGENT_PATHS,
  type AgentAddRequest,
  type AgentAddResponse,
  type AgentCheckRequest,
  type AgentDelRequest,
  type AgentGcRequest,
} from '../contract/agent-api.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import type { RuntimeGcResult } from '../contract/runtime-gc.ts';
import type { CniError } from './spec.ts';

export interface AgentEndpoint {
  socketPath: string;
  timeoutSeconds: number;
}

/**
 * - `unreachable`: no connection (no socket, refused), or the connection broke before an answer.
 * - `timeout`: no complete answer within the deadline.
 * - `rejected`: the agent answered with a CNI error, which `error` passes through.
 * - `bad-answer`: something answered, but not what the contract says.
 */
export type AgentFailureKind = 'unreachable' | 'timeout' | 'rejected' | 'bad-answer';

export interface AgentFailure {
  kind: AgentFailureKind;
  /** The CNI error to report for this failure. */
  error: CniError;
}

export type AgentOutcome<T> = { ok: true; value: T } | { ok: false; failure: AgentFailure };

type Operation = keyof typeof AGENT_PATHS;

export async function agentAdd(endpoint: AgentEndpoint, body: AgentAddRequest): Promise<AgentOutcome<AgentAddResponse>> {
  const answer = await post(endpoint, 'ADD', body);
  if (!answer.ok) return answer;
  const allocation = parseAllocation(answer.value);
  if (typeof allocation === 'string') return badAnswer(endpoint, 'ADD', allocation, JSON.stringify(answer.value));
  return { ok: true, value: allocation };
}

export async function agentDel(endpoint: AgentEndpoint, body: AgentDelRequest): Promise<AgentOutcome<void>> {
  const answer = await post(endpoint, 'DEL', body);
  return answer.ok ? { ok: true, value: undefined } : answer;
}

export async function agentCheck(endpoint: AgentEndpoint, body: AgentCheckRequest): Promise<AgentOutcome<void>> {
  const answer = await post(endpoint, 'CHECK', body);
  return answer.ok ? { ok: true, value: undefined } : answer;
}

export async function agentGc(endpoint: AgentEndpoint, body: AgentGcRequest): Promise<AgentOutcome<RuntimeGcResult>> {
  const answer = await post(endpoint, 'GC', body);
  if (!answer.ok) return answer;
  const { released, stale, tooYoung } = answer.value as Partial<Record<keyof RuntimeGcResult, unknown>>;
  if (!Array.isArray(released) || !released.every((ip) => typeof ip === 'string') || typeof stale !== 'number' || typeof tooYoung !== 'number') {
    return badAnswer(endpoint, 'GC', 'not a GC result {"released": [...], "stale", "tooYoung"}', JSON.stringify(answer.value));
  }
  return { ok: true, value: answer.value as RuntimeGcResult };
}

/**
 * STATUS: an agent that cannot be reached means the plugin is not available (code 50), not "try again" (11):
 * a runtime reports the network not ready, and the kubelet schedules no new pods on the node until it is.
 */
export async function agentStatus(endpoint: AgentEndpoint): Promise<AgentOutcome<void>> {
  const answer = await post(endpoint, 'STATUS', {});
  if (answer.ok) return { ok: true, value: undefined };
  const { kind, error } = answer.failure;
  if (kind === 'rejected' || error.code === CniErrorCode.PluginNotAvailable) return answer;
  return failure(kind, { ...error, code: CniErrorCode.PluginNotAvailable });
}

/** The `ipam` key that sets each command's deadline. */
const DEADLINE_KEY: Record<Operation, string> = {
  ADD: 'add_timeout_seconds',
  DEL: 'del_timeout_seconds',
  CHECK: 'del_timeout_seconds',
  GC: 'del_timeout_seconds',
  STATUS: 'status_timeout_seconds',
};

type Exchange =
  | { kind: 'answered'; status: number; text: string }
  | { kind: 'failed'; connected: boolean; error: NodeJS.ErrnoException }
  | { kind: 'timeout' };

/** POSTs a JSON body; a 200 answer gives its JSON object, anything else a failure. */
async function post(endpoint: AgentEndpoint, operation: Operation, body: object): Promise<AgentOutcome<object>> {
  const exchange = await exchangeJson(endpoint, AGENT_PATHS[operation], JSON.stringify(body));
  const { socketPath, timeoutSeconds } = endpoint;
  switch (exchange.kind) {
    case 'timeout':
      return failure('timeout', {
        code: CniErrorCode.TryAgainLater,
        msg: `tidepool agent at ${socketPath} did not answer ${operation} within ${timeoutSeconds} s`,
        details:
          'the agent may be overloaded or waiting on Temporal or the Kubernetes API: see the tidepool-agent logs on ' +
          `this node. The deadline is ipam.${DEADLINE_KEY[operation]}.`,
      });
    case 'failed': {
      const errno = exchange.error.code ?? exchange.error.message;
      return failure('unreachable', {
        code: CniErrorCode.TryAgainLater,
        msg: exchange.connected
          ? `the connection to the tidepool agent at ${socketPath} broke before it answered ${operation} (${errno})`
          : `tidepool agent is not reachable at ${socketPath} (${errno}): ` +
            'is the tidepool-agent DaemonSet running on this node?',
        details: exchange.error.message,
      });
    }
    case 'answered':
      return interpretAnswer(endpoint, operation, exchange.status, exchange.text);
  }
}

function interpretAnswer(
  endpoint: AgentEndpoint,
  operation: Operation,
  status: number,
  text: string,
): AgentOutcome<object> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return badAnswer(endpoint, operation, `HTTP ${status} with a body that is not JSON`, text);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return badAnswer(endpoint, operation, `HTTP ${status} with a body that is not a JSON object`, text);
  }
  if (status === 200) return { ok: true, value: body };
  const { code, msg, details } = body as Record<string, unknown>;
  if (
    typeof code !== 'number' ||
    !Number.isInteger(code) ||
    code < 1 ||
    typeof msg !== 'string' ||
    (details !== undefined && typeof details !== 'string')
  ) {
    return badAnswer(endpoint, operation, `HTTP ${status} without a CNI error {"code", "msg", "details"?}`, text);
  }
  return failure('rejected', details === undefined ? { code, msg } : { code, msg, details });
}

type Failed = { ok: false; failure: AgentFailure };

function badAnswer(endpoint: AgentEndpoint, operation: Operation, problem: string, text: string): Failed {
  const excerpt = text.length > 300 ? `${text.slice(0, 300)}...` : text;
  return failure('bad-answer', {
    code: CniErrorCode.IOFailure,
    msg: `tidepool agent at ${endpoint.socketPath} gave an unexpected answer to ${operation}: ${problem}`,
    details:
      `is the process listening on ${endpoint.socketPath} a tidepool agent of a matching version? ` +
      `It answered: ${excerpt}`,
  });
}

function failure(kind: AgentFailureKind, error: CniError): Failed {
  return { ok: false, failure: { kind, error } };
}

function exchangeJson(endpoint: AgentEndpoint, path: string, payload: string): Promise<Exchange> {
  return new Promise((resolve) => {
    let settled = false;
    let connected = false;
    const settle = (exchange: Exchange) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(exchange);
    };
    const req = request(
      {
        socketPath: endpoint.socketPath,
        path,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          settle({ kind: 'answered', status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (error) => settle({ kind: 'failed', connected: true, error }));
      },
    );
    const deadline = setTimeout(() => {
      settle({ kind: 'timeout' });
      req.destroy();
    }, endpoint.timeoutSeconds * 1000);
    req.on('socket', (socket) => socket.once('connect', () => (connected = true)));
    req.on('error', (error) => settle({ kind: 'failed', connected, error }));
    req.end(payload);
  });
}

/** Validates an ADD answer; gives the allocation, or what is wrong with the answer. */
function parseAllocation(body: object): AgentAddResponse | string {
  const { ips, routes = [] } = body as { ips?: unknown; routes?: unknown };
  if (!Array.isArray(ips) || ips.length === 0) return '"ips" is missing or empty';
  if (!Array.isArray(routes)) return '"routes" is not a list';
  const allocation: AgentAddResponse = { ips: [], routes: [] };
  for (const [index, entry] of ips.entries()) {
    const { address, version, gateway } = (entry ?? {}) as Record<string, unknown>;
    if (version !== 4 && version !== 6) return `ips[${index}].version is ${JSON.stringify(version)}, expected 4 or 6`;
    if (typeof address !== 'string' || cidrVersion(address) !== version) {
      return `ips[${index}].address ${JSON.stringify(address)} is not an IPv${version} CIDR`;
    }
    if (gateway !== undefined && (typeof gateway !== 'string' || isIP(gateway) !== version)) {
      return `ips[${index}].gateway ${JSON.stringify(gateway)} is not an IPv${version} address`;
    }
    allocation.ips.push(gateway === undefined ? { address, version } : { address, version, gateway });
  }
  for (const [index, entry] of routes.entries()) {
    const { dst, gw } = (entry ?? {}) as Record<string, unknown>;
    const dstVersion = typeof dst === 'string' ? cidrVersion(dst) : undefined;
    if (typeof dst !== 'string' || dstVersion === undefined) {
      return `routes[${index}].dst ${JSON.stringify(dst)} is not a CIDR`;
    }
    if (gw !== undefined && (typeof gw !== 'string' || isIP(gw) !== dstVersion)) {
      return `routes[${index}].gw ${JSON.stringify(gw)} is not an IPv${dstVersion} address`;
    }
    allocation.routes.push(gw === undefined ? { dst } : { dst, gw });
  }
  return allocation;
}

function cidrVersion(value: string): 4 | 6 | undefined {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (!match) return undefined;
  const version = isIP(match[1] ?? '');
  if (version === 0 || Number(match[2]) > (version === 4 ? 32 : 128)) return undefined;
  return version === 4 ? 4 : 6;
}
