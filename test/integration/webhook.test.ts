import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { AdmissionregistrationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError } from '../../src/k8s/errors.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import type { IPPoolSpec } from '../../src/k8s/types.ts';
import { serveWebhook } from '../../src/webhook/server.ts';
import { stackPaths } from '../../stack/config.ts';
import { kubeConfig, stack, waitFor } from '../harness/cluster.ts';

const tag = randomBytes(3).toString('hex');
const labels = { 'tidepool.dev/webhook-test': tag };
const client = () => new TidepoolClient(kubeConfig());
const admission = () => kubeConfig().makeApiClient(AdmissionregistrationV1Api);
const configName = `tidepool-webhook-test-${tag}`;
const created: string[] = [];
let server: Server;

async function rejection(name: string, spec: IPPoolSpec): Promise<string> {
  try {
    await client().createPool(name, spec, labels);
  } catch (error) {
    expect(error).toBeInstanceOf(KubeApiError);
    return (error as Error).message;
  }
  created.push(name);
  throw new Error(`the webhook admitted IPPool ${name}`);
}

beforeAll(async () => {
  const paths = stackPaths();
  const served = await serveWebhook({
    kubeConfig: kubeConfig(),
    refuseDeleteWithAllocatedIPs: true,
    host: '127.0.0.1',
    port: 0,
    cert: readFileSync(paths.servingCert),
    key: readFileSync(paths.servingKey),
  });
  server = served.server;
  const clientConfig = (path: string) => ({
    url: `https://127.0.0.1:${served.port}${path}`,
    caBundle: readFileSync(stack().caFile).toString('base64'),
  });
  // Only objects labelled for this run go through this test's webhook, so nothing else depends on it.
  const common = { objectSelector: { matchLabels: labels }, admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail', timeoutSeconds: 5 };
  await admission().createMutatingWebhookConfiguration({
    body: {
      metadata: { name: configName },
      webhooks: [{ name: 'ippools.mutate.tidepool.dev', clientConfig: clientConfig('/mutate'), rules: [{ apiGroups: ['tidepool.dev'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['ippools'], scope: 'Cluster' }], ...common }],
    },
  });
  await admission().createValidatingWebhookConfiguration({
    body: {
      metadata: { name: configName },
      webhooks: [{ name: 'pools.validate.tidepool.dev', clientConfig: clientConfig('/validate'), rules: [{ apiGroups: ['tidepool.dev'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE', 'DELETE'], resources: ['ippools', 'reservedips'], scope: 'Cluster' }], ...common }],
    },
  });
  await waitFor('the API server to call the webhook', async () => {
    const name = `probe-${randomBytes(3).toString('hex')}`;
    const pool = await client().createPool(name, { subnet: '10.94.200.0/24', ips: ['10.94.200.1'] }, labels);
    created.push(name);
    return (pool.metadata.finalizers ?? []).includes('tidepool.dev/ip-protection');
  });
});

afterAll(async () => {
  await admission().deleteMutatingWebhookConfiguration({ name: configName }).catch(() => undefined);
  await admission().deleteValidatingWebhookConfiguration({ name: configName }).catch(() => undefined);
  server?.close();
  for (const name of created) {
    const pool = await client().getPool(name);
    if (!pool) continue;
    await client().replacePoolStatus({ ...pool, status: {} }).catch(() => undefined);
    const fresh = await client().getPool(name);
    if (fresh) await client().replacePool({ ...fresh, metadata: { ...fresh.metadata, finalizers: [] } }).catch(() => undefined);
    await client().deletePool(name).catch(() => undefined);
  }
});

describe('the admission webhook, called by the real API server', () => {
  it('adds the finalizer, defaults ipVersion and merges ranges of a new pool', async () => {
    const name = `mutated-${tag}`;
    const pool = await client().createPool(name, { subnet: '10.94.0.0/24', ips: ['10.94.0.20-10.94.0.30', '10.94.0.10-10.94.0.19'] }, labels);
    created.push(name);
    expect(pool.metadata.finalizers).toEqual(['tidepool.dev/ip-protection']);
    expect(pool.spec.ipVersion).toBe(4);
    expect(pool.spec.ips).toEqual(['10.94.0.10-10.94.0.30']);
  });

  it('rejects a gateway inside ips and IPs another pool of the subnet holds, naming field and value; accepts the valid neighbour', async () => {
    expect(await rejection(`gw-${tag}`, { subnet: '10.94.1.0/24', ips: ['10.94.1.1-10.94.1.9'], gateway: '10.94.1.1' })).toContain(
      'spec.gateway: 10.94.1.1 is also in spec.ips',
    );
    const first = `first-${tag}`;
    await client().createPool(first, { subnet: '10.94.2.0/24', ips: ['10.94.2.1-10.94.2.9'] }, labels);
    created.push(first);
    expect(await rejection(`second-${tag}`, { subnet: '10.94.2.0/24', ips: ['10.94.2.5-10.94.2.20'] })).toContain(
      `spec.ips: 10.94.2.5-10.94.2.9 also in IPPool ${first}`,
    );
    const neighbour = `neighbour-${tag}`;
    await client().createPool(neighbour, { subnet: '10.94.2.0/24', ips: ['10.94.2.10-10.94.2.20'] }, labels);
    created.push(neighbour);
  });

  it('refuses an update that removes an allocated IP and a delete while IPs are allocated, naming the holders', async () => {
    const name = `busy-${tag}`;
    const pool = await client().createPool(name, { subnet: '10.94.3.0/24', ips: ['10.94.3.1-10.94.3.9'] }, labels);
    created.push(name);
    await client().replacePoolStatus({ ...pool, status: { allocatedIPs: { '10.94.3.5': { pod: 'ns/web-0', podUID: 'u' } }, allocatedIPCount: 1, totalIPCount: 9 } });
    const current = (await client().getPool(name))!;
    await expect(client().replacePool({ ...current, spec: { ...current.spec, ips: ['10.94.3.6-10.94.3.9'] } })).rejects.toThrow(
      'the update removes allocated IPs: 10.94.3.5 (held by ns/web-0)',
    );
    await expect(client().deletePool(name)).rejects.toThrow(`IPPool ${name} has 1 allocated IP, first 10.94.3.5 (ns/web-0)`);
  });
});
