import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { KubeApiError } from '../../src/k8s/errors.ts';
import { webhookConfigurations } from '../../src/webhook/registration.ts';
import { stackPaths } from '../../stack/config.ts';
import { startWebhookProcess } from '../fuzz/webhook.ts';
import { kubeConfig, stack, waitFor } from './cluster.ts';

export interface WebhookUnderTest {
  /** The label that routes an object through this webhook. */
  labels: Record<string, string>;
  /** The webhook process's log lines so far. */
  log: string[];
  stop: () => Promise<void>;
}

/** Removes a pool with its finalizer, reading it again after a conflict (a controller may write its status meanwhile). */
async function removePool(client: TidepoolClient, name: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const pool = await client.getPool(name);
    if (!pool) return;
    try {
      await client.replacePool({ ...pool, metadata: { ...pool.metadata, finalizers: [] } });
      break;
    } catch (error) {
      if (!(error instanceof KubeApiError && error.conflict) || attempt >= 5) throw error;
    }
  }
  await client.deletePool(name).catch(() => undefined);
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
  const webhook = await startWebhookProcess({
    kubeconfig: stack().kubeconfig,
    certFile: paths.servingCert,
    keyFile: paths.servingKey,
    extra: { TIDEPOOL_REFUSE_POOL_DELETE: String(options.refuseDeleteWithAllocatedIPs) },
  });
  const port = webhook.port;
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
  for (const probe of probes) await removePool(client, probe);

  return {
    labels,
    log: webhook.log,
    async stop() {
      await admission.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
      await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => undefined);
      await webhook.stop();
    },
  };
}
