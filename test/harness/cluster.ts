import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1PodSpec } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';
import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { SUITE_NAMESPACE_LABEL } from '../../stack/components.ts';
import { stackConfig } from '../../stack/config.ts';

export function stack() {
  return inject('stack');
}

/** The namespace selector of this run's workers: the namespaces createNamespace made. */
export function suiteSelector(): string {
  return `${SUITE_NAMESPACE_LABEL}=${inject('suiteRun')}`;
}

export function kubeConfig(): KubeConfig {
  return loadKubeConfig(stack().kubeconfig);
}

export function caCert(): string {
  return readFileSync(stack().caFile, 'utf8');
}

/**
 * Drops the ip-protection finalizer of every PodEndpoint left in a namespace, which the reclaim controller
 * would do once the pods are gone; without it, a deleted test namespace stays Terminating for ever.
 */
export async function releaseEndpointFinalizers(namespace: string): Promise<void> {
  const client = new TidepoolClient(kubeConfig());
  for (const endpoint of await client.listPodEndpoints(namespace)) {
    await client.replacePodEndpoint({ ...endpoint, metadata: { ...endpoint.metadata, finalizers: [] } }).catch(() => undefined);
  }
}

/** A fresh namespace for one test file, deleted by the returned cleanup (the real namespace controller runs). */
export async function createNamespace(prefix: string): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = kubeConfig().makeApiClient(CoreV1Api);
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await core.createNamespace({ body: { metadata: { name, labels: { [SUITE_NAMESPACE_LABEL]: inject('suiteRun') } } } });
  // The ServiceAccount admission plugin refuses pods until the serviceaccount controller made `default`.
  await waitFor(`ServiceAccount ${name}/default`, async () => {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
      return true;
    } catch {
      return false;
    }
  });
  return {
    name,
    remove: async () => {
      await releaseEndpointFinalizers(name);
      await core.deleteNamespace({ name });
    },
  };
}

export async function temporalClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const info = stack();
  const connection = await Connection.connect({ address: info.temporalAddress });
  return {
    client: new Client({ connection, namespace: info.temporalNamespace }),
    close: () => connection.close(),
  };
}

const execFileAsync = promisify(execFile);

/** Runs the stack's kubectl against the stack's API server. */
export async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(path.join(stackConfig.binDir, 'kubectl'), args, {
    env: { ...process.env, KUBECONFIG: stack().kubeconfig },
    // A stack that ran benchmarks holds thousands of Events for an hour: `get events -A` is then megabytes.
    maxBuffer: 256 << 20,
  });
  return stdout;
}

/** Polls until `check` returns true; fails after `timeoutMs` with `what` in the message. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

/** A bare pod whose IPs come from `pool` (the pod annotation names it); returns what a CNI call needs of it. */
export async function createPodWithPool(namespace: string, name: string, pool: string, spec: Partial<V1PodSpec> = {}): Promise<{ namespace: string; name: string; uid: string }> {
  const pod = await kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespacedPod({
      namespace,
      body: {
        metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
        spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }], ...spec },
      },
    });
  return { namespace, name, uid: pod.metadata!.uid! };
}

/** A StatefulSet or Deployment whose pods take their IPs from `pool` (the pod annotation names it). */
export async function createWorkload(kind: 'StatefulSet' | 'Deployment', namespace: string, name: string, replicas: number, pool: string): Promise<void> {
  const apps = kubeConfig().makeApiClient(AppsV1Api);
  const labels = { app: name };
  const spec = {
    replicas,
    selector: { matchLabels: labels },
    template: {
      metadata: { labels, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
    },
  };
  if (kind === 'StatefulSet') {
    await apps.createNamespacedStatefulSet({ namespace, body: { metadata: { name }, spec: { ...spec, serviceName: name } } });
  } else {
    await apps.createNamespacedDeployment({ namespace, body: { metadata: { name }, spec } });
  }
}

/** Deletes test pools, clearing their records first so that no finalizer or webhook holds them. */
export async function deletePools(names: readonly string[]): Promise<void> {
  const client = new TidepoolClient(kubeConfig());
  for (const name of names) {
    const pool = await client.getPool(name);
    if (pool) await client.replacePoolStatus({ ...pool, status: {} }).catch(() => undefined);
    await client.deletePool(name).catch(() => undefined);
  }
}
