import { setTimeout as sleep } from 'node:timers/promises';
import {
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { GROUP, VERSION } from './types.ts';

export type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

/** An informer (list, then watch) of one of Tidepool's cluster-wide resources: `ippools`, `reservedips`, `podendpoints`. */
export function tidepoolInformer<T extends KubernetesObject>(kubeConfig: KubeConfig, plural: 'ippools' | 'reservedips' | 'podendpoints'): Watched<T> {
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  return makeInformer<T>(
    kubeConfig,
    `/apis/${GROUP}/${VERSION}/${plural}`,
    () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<KubernetesListObject<T>>,
  );
}

/**
 * Keeps an informer running: the client stops a watch on any error but 410, so restart it with backoff
 * (1 s doubling to 30 s) until `stopped()` says the owner has shut down.
 */
export function restartOnError(informer: Watched<KubernetesObject>, stopped: () => boolean, onError: (error: Error) => void): void {
  informer.on('error', (error: unknown) => {
    if (stopped()) return;
    onError(error instanceof Error ? error : new Error(String(error)));
    void (async () => {
      for (let delay = 1000; !stopped(); delay = Math.min(delay * 2, 30_000)) {
        await sleep(delay);
        if (stopped()) return;
        try {
          await informer.start();
          return;
        } catch {
          // still unreachable: wait longer
        }
      }
    })();
  });
}
