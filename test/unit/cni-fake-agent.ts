// A stand-in for the tidepool agent, for the CNI tests: it serves the invocation endpoint on a unix socket and
// runs each invocation through the agent's own runCni, with the agent's calls answered by the test.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import { AGENT_INVOKE_PATH, AGENT_PATHS, type AgentErrorResponse, type PluginInvocation } from '../../src/contract/agent-api.ts';
import { runCni, type AgentCalls, type AgentOutcome } from '../../src/cni/plugin.ts';

export interface AgentCall {
  /** The path that serves this call on its own (AGENT_PATHS). */
  path: string;
  body: unknown;
}

/**
 * What to do with a call: answer it (200 with a value, otherwise the CNI error in the body); or, for the whole
 * invocation, never answer, close the connection without answering, or answer `raw` as it is.
 */
export type FakeAnswer = { status: number; body: string } | 'hang' | 'hang-up' | { raw: string };

export interface FakeAgent {
  socketPath: string;
  calls: AgentCall[];
  close(): Promise<void>;
}

export const json = (status: number, body: unknown): FakeAnswer => ({ status, body: JSON.stringify(body) });

/** A refusal as the agent's calls give it. */
export const cniError = (status: number, body: AgentErrorResponse): FakeAnswer => json(status, body);

/** Agent calls that record what they are asked into `calls` and answer as `answer` says. */
export function recordingCalls(answer: (call: AgentCall) => FakeAnswer, calls: AgentCall[]): AgentCalls {
  const call = async <T>(path: string, body: unknown): Promise<AgentOutcome<T>> => {
    const reply = answer({ path, body });
    calls.push({ path, body });
    if (typeof reply === 'string' || 'raw' in reply) throw new Error(`a fake answer ${JSON.stringify(reply)} is for the whole invocation`);
    const value = JSON.parse(reply.body) as unknown;
    return reply.status === 200 ? { ok: true, value: value as T } : { ok: false, error: value as AgentErrorResponse };
  };
  return {
    add: (request) => call(AGENT_PATHS.ADD, request),
    del: (request) => call(AGENT_PATHS.DEL, request),
    check: (request) => call(AGENT_PATHS.CHECK, request),
    gc: (request) => call(AGENT_PATHS.GC, request),
    status: () => call(AGENT_PATHS.STATUS, {}),
  };
}

/** The answer for an invocation as a whole, when the test gives one for every call ('hang', 'hang-up', raw). */
function wholeAnswer(answer: (call: AgentCall) => FakeAnswer): 'hang' | 'hang-up' | { raw: string } | undefined {
  const probe = answer({ path: AGENT_INVOKE_PATH, body: undefined });
  return typeof probe === 'string' || 'raw' in probe ? probe : undefined;
}

export async function startFakeAgent(dir: string, answer: (call: AgentCall) => FakeAnswer): Promise<FakeAgent> {
  const socketPath = path.join(dir, 'agent.sock');
  const calls: AgentCall[] = [];
  const agentCalls = recordingCalls(answer, calls);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const whole = wholeAnswer(answer);
      if (whole === 'hang') return;
      if (whole === 'hang-up') {
        req.socket.destroy();
        return;
      }
      if (whole !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(whole.raw);
        return;
      }
      if (req.url !== AGENT_INVOKE_PATH) {
        res.writeHead(404).end();
        return;
      }
      const { env, stdin } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PluginInvocation;
      void runCni(env, stdin, agentCalls).then((output) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(output)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    socketPath,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The CNI_* environment of one plugin run, as a runtime sets it, for the pod named in `podArgs`. */
export function cniEnvFor(
  command: string,
  podArgs: string,
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: 'c0ffee',
    CNI_NETNS: '/var/run/netns/cni-1',
    CNI_IFNAME: 'net1',
    CNI_ARGS: podArgs,
    CNI_PATH: '/opt/cni/bin',
    ...overrides,
  };
}
