import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { kubeCall } from './errors.ts';

const FIELD_MANAGER = 'tidepool';

/**
 * Every object in the YAML files of a folder (sorted by file name) or of one file, deserialized into the
 * client's models: KubernetesObjectApi serializes known kinds through those models and silently drops keys
 * it does not know in their raw form (`x-kubernetes-validations` of a plain parsed CRD, for one).
 */
export function readManifests(fileOrDir: string): KubernetesObject[] {
  const files = fileOrDir.endsWith('.yaml') || fileOrDir.endsWith('.yml')
    ? [fileOrDir]
    : readdirSync(fileOrDir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(fileOrDir, f));
  return files.flatMap((file) => {
    try {
      return (loadAllYaml(readFileSync(file, 'utf8')) as (KubernetesObject | null)[]).filter((o) => o !== null);
    } catch (error) {
      throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  });
}

/** Server-side applies each object (create or update), as `kubectl apply --server-side` does. */
export async function applyManifests(kubeConfig: KubeConfig, objects: KubernetesObject[]): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kubeConfig);
  for (const object of objects) {
    const label = `${object.kind}/${object.metadata?.name ?? '?'}`;
    await kubeCall(`apply ${label}`, () =>
      api.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    );
  }
}

/** Waits until every named CRD reports Established (its API is served). */
export async function waitForCrdsEstablished(kubeConfig: KubeConfig, names: string[], timeoutMs = 30_000): Promise<void> {
  const api = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(names);
  while (pending.size > 0) {
    for (const name of [...pending]) {
      const crd = await kubeCall(`read CRD ${name}`, () => api.readCustomResourceDefinition({ name }));
      const established = crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      if (established) pending.delete(name);
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`CRDs not Established after ${timeoutMs / 1000} s: ${[...pending].join(', ')}`);
    }
    await sleep(200);
  }
}
