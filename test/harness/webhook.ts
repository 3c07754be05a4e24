import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { webhookConfigurations } from '../../src/webhook/registration.ts';
import { stackPaths } from '../../stack/config.ts';
import { kubeConfig, stack, waitFor } from './cluster.ts';

export interface WebhookUnderTest {
  /** The label that routes an object through this webhook. */
  labels: Record<string, string>;
  /** The webhook process's log lines so far. */
  log: string[];
  stop: () => Promise<void>;
}

/**
 * Starts the webhook process (src/webhook/main.ts) on a free port with the stack's serving certificate, and
 * registers it with the real API server for objects carrying this run's label only, so nothing else in the
 * suite goes through it.
 */
export async function startWebhook(options: { refuseDeleteWithAllocatedIPs: boolean }): Promise<WebhookUnderTest> {
  const tag = randomBytes(3).toString('hex');
  const labels = { 'tidepool.dev/webhook-test': tag };
  const paths = stackPaths();
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../../src/webhook/main.ts')], {
    env: {
      ...process.env,
      KUBECONFIG: stack().kubeconfig,
      TIDEPOOL_WEBHOOK_CERT_FILE: paths.servingCert,
      TIDEPOOL_WEBHOOK_KEY_FILE: paths.servingKey,
      TIDEPOOL_WEBHOOK_PORT: '0',
      TIDEPOOL_REFUSE_POOL_DELETE: String(options.refuseDeleteWithAllocatedIPs),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const log: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the webhook exited with ${code} before listening: ${log.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line);
      const entry = JSON.parse(line) as { msg: string; port?: number };
      if (entry.msg === 'tidepool webhook listening' && entry.port) resolve(entry.port);
    });
  });
  const admission = kubeConfig().makeApiClient(AdmissionregistrationV1Api);
  const name = `tidepool-webhook-test-${tag}`;
  const caBundle = readFileSync(stack().caFile).toString('base64');
  const { mutating, validating } = webhookConfigurations({
    name,
    clientConfig: (webhookPath) => ({ url: `https://127.0.0.1:${port}${webhookPath}`, caBundle }),
    objectSelector: { matchLabels: labels },
    timeoutSeconds: 5,
  });
  await admission.createMutatingWebhookConfiguration({ body: mutating });
  await admission.createValidatingWebhookConfiguration({ body: validating });

  const client = new TidepoolClient(kubeConfig());
  const probes: string[] = [];
  await waitFor('the API server to call the webhook', async () => {
    const probe = `probe-${tag}-${probes.length}`;
    const pool = await client.createPool(probe, { subnet: '10.93.250.0/24', ips: [`10.93.250.${probes.length + 1}`] }, labels);
    probes.push(probe);
    return (pool.metadata.finalizers ?? []).length > 0;
  });
  for (const probe of probes) {
    const pool = await client.getPool(probe);
    if (pool) await client.replacePool({ ...pool, metadata: { ...pool.metadata, finalizers: [] } });
    await client.deletePool(probe).catch(() => undefined);
  }

  return {
    labels,
    log,
    async stop() {
      await admission.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
      await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => undefined);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
