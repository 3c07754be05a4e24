// A minimal stand-in for the tidepool agent's unix-socket HTTP API, for the CNI tests.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { AgentErrorResponse } from '../../src/contract/agent-api.ts';

export interface AgentCall {
  path: string;
  body: unknown;
}

/** What to do with a request: answer it, never answer it, or close the connection without answering. */
export type FakeAnswer = { status: number; body: string } | 'hang' | 'hang-up';

export interface FakeAgent {
  socketPath: string;
  calls: AgentCall[];
  close(): Promise<void>;
}

export const json = (status: number, body: unknown): FakeAnswer => ({ status, body: JSON.stringify(body) });

/** A non-200 answer as the contract defines it. */
export const cniError = (status: number, body: AgentErrorResponse): FakeAnswer => json(status, body);

export async function startFakeAgent(dir: string, answer: (call: AgentCall) => FakeAnswer): Promise<FakeAgent> {
  const socketPath = path.join(dir, 'agent.sock');
  const calls: AgentCall[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const call = { path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
      calls.push(call);
      const reply = answer(call);
      if (reply === 'hang') return;
      if (reply === 'hang-up') {
        req.socket.destroy();
        return;
      }
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body);
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
