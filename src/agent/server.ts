import { chmod, mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { AGENT_INVOKE_PATH, AGENT_PATHS, type PluginInvocation } from '../contract/agent-api.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import { isObject, isStringMap } from '../contract/values.ts';
import { runCni, type AgentCalls, type AgentOutcome } from '../cni/plugin.ts';
import type { CniError as CniErrorBody } from '../cni/spec.ts';
import { CniError, type Agent } from './agent.ts';
import { agentRequestProblem } from './requests.ts';

const MAX_BODY_BYTES = 64 * 1024;
/** An invocation carries the whole network configuration, which a CHECK's prevResult makes longer. */
const MAX_INVOCATION_BYTES = 1024 * 1024;

class BodyTooLarge extends Error {}

/** Reads a JSON body. A body over the limit is read to its end but not kept, so that it can be answered (413). */
function readBody(request: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    request.on('end', () => {
      if (size > maxBytes) {
        reject(new BodyTooLarge(`request body is larger than ${maxBytes} bytes`));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(new CniError(CniErrorCode.InvalidEnvironment, `request body is not JSON: ${(error as Error).message}`));
      }
    });
    request.on('error', reject);
  });
}

function send(response: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** The answer of an agent call that failed: its CNI error, or for any other failure an I/O error (5) naming it. */
function refusal(error: unknown, onError: (error: Error) => void): CniErrorBody {
  if (error instanceof CniError) return { code: error.code, msg: error.message, ...(error.details ? { details: error.details } : {}) };
  onError(error as Error);
  const cause = (error as Error).cause;
  return { code: CniErrorCode.IOFailure, msg: `tidepool agent failed: ${(error as Error).message}`, ...(cause instanceof Error ? { details: cause.message } : {}) };
}

/** The agent's calls as an invocation makes them, in-process: each outcome is what its own path would answer. */
export function agentCalls(agent: Agent, onError: (error: Error) => void = () => {}): AgentCalls {
  const outcome = async <T>(call: () => Promise<T>): Promise<AgentOutcome<T>> => {
    try {
      return { ok: true, value: await call() };
    } catch (error) {
      return { ok: false, error: refusal(error, onError) };
    }
  };
  return {
    add: (request) => outcome(() => agent.add(request)),
    del: (request) => outcome(async () => void (await agent.del(request))),
    check: (request) => outcome(() => agent.check(request)),
    gc: (request) => outcome(() => agent.gc(request)),
    status: () => outcome(() => agent.status()),
  };
}

function invocationProblem(body: unknown): string | undefined {
  if (!isObject(body)) return 'the request body must be a JSON object {"env", "stdin"}';
  if (typeof body.stdin !== 'string') return '"stdin" must be a string';
  if (!isStringMap(body.env)) return '"env" must be an object of strings';
  return undefined;
}

/**
 * Serves the agent API on a unix socket readable and writable by root only (mode 0600): POST /v1/cni/invoke with
 * a whole invocation, answered with what tidepool-cni prints; POST /v1/cni/add, /v1/cni/del, /v1/cni/check,
 * /v1/cni/gc, /v1/cni/status with JSON bodies; GET /healthz. Errors answer `{code, msg, details}` with a CNI
 * error code.
 */
export async function serveAgent(agent: Agent, socketPath: string, onError: (error: Error) => void = () => {}): Promise<http.Server> {
  const calls = agentCalls(agent, onError);
  const operations: Record<string, (body: unknown) => Promise<unknown>> = {
    [AGENT_PATHS.ADD]: (body) => agent.add(body),
    [AGENT_PATHS.DEL]: async (body) => (await agent.del(body), {}),
    [AGENT_PATHS.CHECK]: async (body) => (await agent.check(body), {}),
    [AGENT_PATHS.GC]: (body) => agent.gc(body),
    [AGENT_PATHS.STATUS]: async () => (await agent.status(), {}),
    [AGENT_INVOKE_PATH]: (body) => {
      const { env, stdin } = body as PluginInvocation;
      return runCni(env, stdin, calls);
    },
  };
  const server = http.createServer((request, response) => {
    // Answers after the body is read (and dropped): answered early, a client still sending gets EPIPE, not the answer.
    const answerAfterBody = (status: number, body: unknown) => {
      request.resume();
      request.once('end', () => send(response, status, body));
    };
    if (request.method === 'GET' && request.url === '/healthz') return answerAfterBody(200, { ok: true });
    const target = request.url ?? '';
    const operation = request.method === 'POST' ? operations[target] : undefined;
    if (!operation) return answerAfterBody(404, { code: CniErrorCode.InvalidEnvironment, msg: `no such agent endpoint: ${request.method} ${request.url}` });
    readBody(request, target === AGENT_INVOKE_PATH ? MAX_INVOCATION_BYTES : MAX_BODY_BYTES)
      .then((body) => {
        // A malformed request is refused here, before anything of it reaches Temporal.
        const problem = target === AGENT_INVOKE_PATH ? invocationProblem(body) : agentRequestProblem(target, body);
        if (problem) throw new CniError(CniErrorCode.InvalidEnvironment, problem);
        return operation(body);
      })
      .then(
        (answer) => send(response, 200, answer),
        (error: unknown) => {
          if (error instanceof BodyTooLarge) {
            send(response, 413, { code: CniErrorCode.InvalidEnvironment, msg: error.message });
          } else {
            send(response, error instanceof CniError ? 400 : 500, refusal(error, onError));
          }
        },
      );
  });
  await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  await rm(socketPath, { force: true });
  // Created 0600 (umask 0177), so that no one else can connect between listen() and the chmod that confirms it.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  await chmod(socketPath, 0o600);
  return server;
}
