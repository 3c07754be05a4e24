import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1Namespace,
} from '@kubernetes/client-node';
import { kubeGetOptional } from './errors.ts';
import { GROUP, VERSION, type IPPool, type ReservedIP } from './types.ts';

type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

/**
 * Watch-fed caches of IPPools, ReservedIPs and Namespaces for the worker, so that an allocation does not
 * LIST every pool (whose status holds every record) from the API server. What a cache answers may be a
 * moment old; every pool write still carries the resourceVersion it was computed from, so staleness costs
 * at most a retry, never a wrong write. A watch that fails is restarted with backoff.
 */
export class ClusterCache {
  private readonly informers: Watched<KubernetesObject>[] = [];
  private readonly poolInformer: Watched<IPPool>;
  private readonly reservedInformer: Watched<ReservedIP>;
  private readonly namespaceInformer: Watched<V1Namespace>;
  private readonly core: CoreV1Api;
  private stopped = false;

  constructor(kubeConfig: KubeConfig, onError: (error: Error) => void = () => {}) {
    const custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    const customInformer = <T extends KubernetesObject>(plural: string) =>
      makeInformer<T>(
        kubeConfig,
        `/apis/${GROUP}/${VERSION}/${plural}`,
        () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<KubernetesListObject<T>>,
      );
    this.poolInformer = customInformer<IPPool>('ippools');
    this.reservedInformer = customInformer<ReservedIP>('reservedips');
    this.namespaceInformer = makeInformer<V1Namespace>(kubeConfig, '/api/v1/namespaces', () => this.core.listNamespace());
    for (const informer of [this.poolInformer, this.reservedInformer, this.namespaceInformer] as Watched<KubernetesObject>[]) {
      informer.on('error', (error: unknown) => {
        if (this.stopped) return;
        onError(error instanceof Error ? error : new Error(String(error)));
        void this.restart(informer);
      });
      this.informers.push(informer);
    }
  }

  /** Lists and starts watching; resolves once every cache holds its first list. */
  async start(): Promise<void> {
    await Promise.all(this.informers.map((informer) => informer.start()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.informers.map((informer) => informer.stop()));
  }

  private async restart(informer: Watched<KubernetesObject>): Promise<void> {
    for (let delay = 1000; !this.stopped; delay = Math.min(delay * 2, 30_000)) {
      await sleep(delay);
      if (this.stopped) return;
      try {
        await informer.start();
        return;
      } catch {
        // the API server is still unreachable; try again after a longer pause
      }
    }
  }

  pools(): readonly IPPool[] {
    return this.poolInformer.list();
  }

  pool(name: string): IPPool | undefined {
    return this.poolInformer.get(name);
  }

  reservedIPs(): readonly ReservedIP[] {
    return this.reservedInformer.list();
  }

  /** A namespace from the cache, or from the API server when the watch has not delivered it yet. */
  async namespace(name: string): Promise<V1Namespace | undefined> {
    return (
      this.namespaceInformer.get(name) ??
      (await kubeGetOptional(`get namespace ${name}`, () => this.core.readNamespace({ name })))
    );
  }
}
