import { CoreV1Api, makeInformer, type KubeConfig, type KubernetesObject, type V1Namespace } from '@kubernetes/client-node';
import { kubeGetOptional } from './errors.ts';
import type { IPPool, ReservedIP } from './types.ts';
import { restartOnError, tidepoolInformer, type Watched } from './watch.ts';

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
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.poolInformer = tidepoolInformer<IPPool>(kubeConfig, 'ippools');
    this.reservedInformer = tidepoolInformer<ReservedIP>(kubeConfig, 'reservedips');
    this.namespaceInformer = makeInformer<V1Namespace>(kubeConfig, '/api/v1/namespaces', () => this.core.listNamespace());
    for (const informer of [this.poolInformer, this.reservedInformer, this.namespaceInformer] as Watched<KubernetesObject>[]) {
      restartOnError(informer, () => this.stopped, onError);
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
