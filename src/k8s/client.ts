import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { kubeCall, kubeGetOptional } from './errors.ts';
import {
  API_VERSION,
  GROUP,
  VERSION,
  type IPPool,
  type IPPoolSpec,
  type PodEndpoint,
  type ReservedIP,
  type ReservedIPSpec,
} from './types.ts';

interface List<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

const POOLS = 'ippools';
const RESERVED = 'reservedips';
const ENDPOINTS = 'podendpoints';

/** The calls for one of Tidepool's cluster-scoped resources; `kind` names it in error messages. */
export class ClusterResource<T extends { metadata: { name: string } }> {
  private readonly api: CustomObjectsApi;
  private readonly plural: string;
  private readonly kind: string;

  constructor(api: CustomObjectsApi, plural: string, kind: string) {
    this.api = api;
    this.plural = plural;
    this.kind = kind;
  }

  private get resource() {
    return { group: GROUP, version: VERSION, plural: this.plural };
  }

  get(name: string): Promise<T | undefined> {
    return kubeGetOptional(`get ${this.kind} ${name}`, () => this.api.getClusterCustomObject({ ...this.resource, name })) as Promise<T | undefined>;
  }

  async list(): Promise<List<T>> {
    return (await kubeCall(`list ${this.kind}s`, () => this.api.listClusterCustomObject(this.resource))) as List<T>;
  }

  create(body: T): Promise<T> {
    return kubeCall(`create ${this.kind} ${body.metadata.name}`, () => this.api.createClusterCustomObject({ ...this.resource, body })) as Promise<T>;
  }

  replace(body: T): Promise<T> {
    const name = body.metadata.name;
    return kubeCall(`update ${this.kind} ${name}`, () => this.api.replaceClusterCustomObject({ ...this.resource, name, body })) as Promise<T>;
  }

  replaceStatus(body: T): Promise<T> {
    const name = body.metadata.name;
    return kubeCall(`update ${this.kind} ${name} status`, () => this.api.replaceClusterCustomObjectStatus({ ...this.resource, name, body })) as Promise<T>;
  }

  async delete(name: string): Promise<void> {
    await kubeCall(`delete ${this.kind} ${name}`, () => this.api.deleteClusterCustomObject({ ...this.resource, name }));
  }
}

/**
 * Typed access to Tidepool's custom resources. Every method throws KubeApiError on an API error, so callers
 * test `.notFound`, `.conflict` (stale resourceVersion: read again and retry) and `.alreadyExists`; `get*`
 * methods return undefined for a missing object instead. Writes send the object's resourceVersion, so a
 * write based on a stale read fails with a conflict rather than overwriting someone else's change.
 */
export class TidepoolClient {
  private readonly api: CustomObjectsApi;
  private readonly pools: ClusterResource<IPPool>;
  /** ReservedIPs: get, list, create, replace, replaceStatus and delete, each throwing KubeApiError as below. */
  readonly reservedIPs: ClusterResource<ReservedIP>;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.pools = new ClusterResource(this.api, POOLS, 'IPPool');
    this.reservedIPs = new ClusterResource(this.api, RESERVED, 'ReservedIP');
  }

  getPool(name: string): Promise<IPPool | undefined> {
    return this.pools.get(name);
  }

  async listPools(): Promise<{ items: IPPool[]; resourceVersion: string | undefined }> {
    const list = await this.pools.list();
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
  }

  createPool(name: string, spec: IPPoolSpec, labels?: Record<string, string>): Promise<IPPool> {
    return this.pools.create({ apiVersion: API_VERSION, kind: 'IPPool', metadata: { name, labels }, spec });
  }

  /** Replaces spec and metadata; fails with a conflict when `pool.metadata.resourceVersion` is stale. */
  replacePool(pool: IPPool): Promise<IPPool> {
    return this.pools.replace(pool);
  }

  /** Replaces the status; fails with a conflict when `pool.metadata.resourceVersion` is stale. */
  replacePoolStatus(pool: IPPool): Promise<IPPool> {
    return this.pools.replaceStatus(pool);
  }

  deletePool(name: string): Promise<void> {
    return this.pools.delete(name);
  }

  createReservedIP(name: string, spec: ReservedIPSpec, labels?: Record<string, string>): Promise<ReservedIP> {
    return this.reservedIPs.create({ apiVersion: API_VERSION, kind: 'ReservedIP', metadata: { name, labels }, spec });
  }

  getPodEndpoint(namespace: string, name: string): Promise<PodEndpoint | undefined> {
    return kubeGetOptional(`get PodEndpoint ${namespace}/${name}`, () =>
      this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: ENDPOINTS, namespace, name }),
    ) as Promise<PodEndpoint | undefined>;
  }

  /** PodEndpoints of one namespace, or of all namespaces when `namespace` is undefined. */
  async listPodEndpoints(namespace?: string): Promise<PodEndpoint[]> {
    const list = (await kubeCall(`list PodEndpoints${namespace ? ` in ${namespace}` : ''}`, () =>
      namespace === undefined
        ? this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: ENDPOINTS })
        : this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: ENDPOINTS, namespace }),
    )) as List<PodEndpoint>;
    return list.items;
  }

  createPodEndpoint(endpoint: PodEndpoint): Promise<PodEndpoint> {
    const { namespace, name } = endpoint.metadata;
    return kubeCall(`create PodEndpoint ${namespace}/${name}`, () =>
      this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: ENDPOINTS, namespace, body: endpoint }),
    ) as Promise<PodEndpoint>;
  }

  /** Fails with a conflict when `endpoint.metadata.resourceVersion` is stale. */
  replacePodEndpoint(endpoint: PodEndpoint): Promise<PodEndpoint> {
    const { namespace, name } = endpoint.metadata;
    return kubeCall(`update PodEndpoint ${namespace}/${name}`, () =>
      this.api.replaceNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: ENDPOINTS,
        namespace,
        name,
        body: endpoint,
      }),
    ) as Promise<PodEndpoint>;
  }

  async deletePodEndpoint(namespace: string, name: string): Promise<void> {
    await kubeCall(`delete PodEndpoint ${namespace}/${name}`, () =>
      this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: ENDPOINTS, namespace, name }),
    );
  }
}
