// No bearer token or private key reaches a log: the worker, agent and webhook processes run with a
// recognisable token in their kubeconfig (the worker and agent also with a Temporal API key, the webhook with
// the stack's serving key), are driven through
// successes and errors, and their whole output is searched for the secrets.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_PATHS } from '../../src/contract/agent-api.ts';
import { stackPaths } from '../../stack/config.ts';
import { requestAgent } from '../fuzz/agent.ts';
import { postToWebhook, startWebhookProcess } from '../fuzz/webhook.ts';
import { caCert, stack } from '../harness/cluster.ts';

const root = path.resolve(import.meta.dirname, '../..');
let dir: string;
let canaryToken: string;
const canaryApiKey = `tidepool-canary-api-key-${randomBytes(12).toString('hex')}`;
let canaryKubeconfig: string;

/** The secrets that must never be printed: the tokens, and every line of the serving key's PEM body. */
function secrets(): string[] {
  const keyLines = readFileSync(stackPaths().servingKey, 'utf8')
    .split('\n')
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
  return [canaryToken, canaryApiKey, readFileSync(stackPaths().adminToken, 'utf8').trim(), ...keyLines];
}

function leaked(log: string[]): string[] {
  const text = log.join('\n');
  return secrets().filter((secret) => text.includes(secret));
}

/** Runs a Tidepool process with its stdout and stderr kept, until `drive` is done; then stops it. */
async function runLogged(script: string, env: Record<string, string>, drive: (log: string[]) => Promise<void>): Promise<string[]> {
  const child = spawn(process.execPath, [path.join(root, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  try {
    await drive(log);
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
  return log;
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tidepool-secrets-'));
  canaryToken = `tidepool-canary-token-${randomBytes(12).toString('hex')}`;
  const kubeconfig = parse(readFileSync(stack().kubeconfig, 'utf8')) as { users: { user: { token?: string } }[] };
  for (const user of kubeconfig.users) user.user.token = canaryToken;
  canaryKubeconfig = path.join(dir, 'canary-kubeconfig');
  writeFileSync(canaryKubeconfig, stringify(kubeconfig), { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The canary kubeconfig token and Temporal API key (plaintext: the dev server has no TLS), on a task queue of its own. */
const withCanaries = () => ({
  KUBECONFIG: canaryKubeconfig,
  TEMPORAL_ADDRESS: stack().temporalAddress,
  TEMPORAL_API_KEY: canaryApiKey,
  TEMPORAL_TLS: 'false',
  TIDEPOOL_TASK_QUEUE: `tidepool-secrets-${randomBytes(4).toString('hex')}`,
});

const pool = (name: string) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: `uid-${name}`, kind: { kind: 'IPPool' }, operation: 'CREATE', object: { metadata: { name }, spec: { subnet: '10.252.0.0/24', ips: ['10.252.0.10'] } } },
});

describe('no token or key reaches a log', () => {
  it('the webhook, with the real token (its API calls succeed) and with a refused one (they fail)', async () => {
    const paths = stackPaths();
    for (const kubeconfig of [stack().kubeconfig, canaryKubeconfig]) {
      const webhook = await startWebhookProcess({ kubeconfig, certFile: paths.servingCert, keyFile: paths.servingKey });
      try {
        const answers = [
          await postToWebhook(webhook.port, caCert(), '/validate', JSON.stringify(pool('secrets-a'))),
          await postToWebhook(webhook.port, caCert(), '/mutate', JSON.stringify(pool('secrets-b'))),
          await postToWebhook(webhook.port, caCert(), '/validate', '{"kind": "AdmissionReview"'),
          await postToWebhook(webhook.port, caCert(), '/nowhere', JSON.stringify(pool('secrets-c'))),
        ];
        // The canary token is refused by the API server: the overlap check cannot list the pools.
        expect(answers[0]!.status).toBe(kubeconfig === canaryKubeconfig ? 500 : 200);
      } finally {
        await webhook.stop();
      }
      expect(webhook.log.length).toBeGreaterThan(0);
      expect(leaked(webhook.log)).toEqual([]);
    }
  });

  it('the worker, whose every API call is refused for its token', async () => {
    const log = await runLogged(
      'src/worker/main.ts',
      {
        ...withCanaries(),
        TIDEPOOL_GC_ENABLED: 'false',
        TIDEPOOL_METRICS_PORT: '0',
      },
      (output) => until('the worker to log a refused API call', () => /401|Unauthorized/.test(output.join(''))),
    );
    expect(leaked(log)).toEqual([]);
  });

  it('the agent, through refused requests, an ADD that times out and a DEL', async () => {
    const socketPath = path.join(dir, 'agent', 'agent.sock');
    const log = await runLogged(
      'src/agent/main.ts',
      {
        ...withCanaries(),
        TIDEPOOL_AGENT_SOCKET: socketPath,
        TIDEPOOL_SPOOL_DIR: path.join(dir, 'spool'),
        TIDEPOOL_ADD_TIMEOUT: '1s',
      },
      async (output) => {
        await until('the agent to listen', () => output.join('').includes('tidepool agent listening'));
        const attachment = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'secrets', podName: 'p', podUID: 'uid-1' };
        await requestAgent(socketPath, 'POST', AGENT_PATHS.ADD, '{"containerID":');
        await requestAgent(socketPath, 'POST', AGENT_PATHS.ADD, JSON.stringify({ ...attachment, netns: '/x', defaultPools: { ipv4: ['p'], ipv6: [] } }));
        await requestAgent(socketPath, 'POST', AGENT_PATHS.DEL, JSON.stringify(attachment));
        await requestAgent(socketPath, 'GET', '/nowhere', '');
      },
    );
    expect(log.join('')).toContain('tidepool agent listening');
    expect(leaked(log)).toEqual([]);
  });
});
