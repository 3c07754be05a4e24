import { chmod, mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { AGENT_PATHS } from '../cni/agent-api.ts';
import { CniError, type Agent } from './agent.ts';

const MAX_BODY_BYTES = 64 * 1024;

function readBody(request: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new CniError(4, `request body is larger than ${MAX_BODY_BYTES} bytes`));
        request.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    request.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(new CniError(4, `request body is not JSON: ${(error as Error).message}`));
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

/**
 * Serves the agent API on a unix socket readable and writable by root only (mode 0600):
 * POST /v1/cni/add, /v1/cni/del, /v1/cni/check with JSON bodies; GET /healthz. Errors answer
 * `{code, msg, details}` with a CNI error code.
 */
export async function serveAgent(agent: Agent, socketPath: string, onError: (error: Error) => void = () => {}): Promise<http.Server> {
  const routes: Record<string, (body: unknown) => Promise<unknown>> = {
    [AGENT_PATHS.ADD]: (body) => agent.add(body),
    [AGENT_PATHS.DEL]: async (body) => (await agent.del(body), {}),
    [AGENT_PATHS.CHECK]: async (body) => (await agent.check(body), {}),
  };
  const server = http.createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/healthz') return send(response, 200, { ok: true });
    const route = request.method === 'POST' ? routes[request.url ?? ''] : undefined;
    if (!route) return send(response, 404, { code: 4, msg: `no such agent endpoint: ${request.method} ${request.url}` });
    readBody(request)
      .then(route)
      .then(
        (answer) => send(response, 200, answer),
        (error: unknown) => {
          if (error instanceof CniError) {
            send(response, 400, { code: error.code, msg: error.message, ...(error.details ? { details: error.details } : {}) });
          } else {
            onError(error as Error);
            send(response, 500, { code: 5, msg: `tidepool agent failed: ${(error as Error).message}` });
          }
        },
      );
  });
  await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  return server;
}
