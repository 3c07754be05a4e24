import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdmissionregistrationV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { applyManifests } from '../src/k8s/apply.ts';
import { KubeApiError, kubeCall } from '../src/k8s/errors.ts';
import { API_VERSION, GROUP, IP_PROTECTION_FINALIZER, VERSION, type IPPool } from '../src/k8s/types.ts';
import { webhookConfigurations } from '../src/webhook/registration.ts';
import type { StackConfig, StackPaths } from './config.ts';

/** The name of the stack's webhook configurations, as the Helm chart names its own after the release. */
export const STACK_WEBHOOK_NAME = 'tidepool';

/**
 * The label the suite's own webhook tests route their objects by (test/harness/webhook.ts). The stack's
 * webhook leaves those objects to the test's webhook, so that a test's settings are the only ones applied.
 */
export const WEBHOOK_TEST_LABEL = 'tidepool.dev/webhook-test';

export function stackWebhookUrl(config: StackConfig): string {
  return `https://${config.host}:${config.ports.webhook}`;
}

/**
 * Registers the stack's webhook process with the API server: the chart's rules, failurePolicy and timeouts
 * (src/webhook/registration.ts builds both), a URL on 127.0.0.1 instead of a Service, and the stack CA as the
 * caBundle. Then waits until the API server calls it: a dry-run create of a probe pool comes back with the
 * ip-protection finalizer only once the mutating webhook answered.
 */
export async function registerStackWebhook(kubeConfig: KubeConfig, config: StackConfig, paths: StackPaths, timeoutMs = 30_000): Promise<void> {
  const caBundle = readFileSync(paths.caCert).toString('base64');
  const { mutating, validating } = webhookConfigurations({
    name: STACK_WEBHOOK_NAME,
    clientConfig: (path) => ({ url: `${stackWebhookUrl(config)}${path}`, caBundle }),
    objectSelector: { matchExpressions: [{ key: WEBHOOK_TEST_LABEL, operator: 'DoesNotExist' }] },
  });
  await applyManifests(kubeConfig, [mutating, validating] as Parameters<typeof applyManifests>[1]);

  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const probe: IPPool = {
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'tidepool-stack-webhook-probe' },
    spec: { subnet: '192.0.2.0/30', ips: ['192.0.2.1'] },
  };
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const created = (await kubeCall('dry-run create IPPool', () =>
        custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'ippools', body: probe, dryRun: 'All' }),
      )) as IPPool;
      if ((created.metadata.finalizers ?? []).includes(IP_PROTECTION_FINALIZER)) return;
      last = 'the mutating webhook was not called';
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      last = error.message;
    }
    await sleep(200);
  }
  throw new Error(`the API server did not call the stack's webhook within ${timeoutMs / 1000} s: ${last}`);
}

/** Removes the stack webhook's registration, so that the API server stops calling a webhook that is going away. */
export async function unregisterStackWebhook(kubeConfig: KubeConfig): Promise<void> {
  const admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  for (const remove of [
    () => admission.deleteMutatingWebhookConfiguration({ name: STACK_WEBHOOK_NAME }),
    () => admission.deleteValidatingWebhookConfiguration({ name: STACK_WEBHOOK_NAME }),
  ]) {
    try {
      await kubeCall(`delete webhook configuration ${STACK_WEBHOOK_NAME}`, remove);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.notFound)) throw error;
    }
  }
}
