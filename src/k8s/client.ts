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

/**
 * Typed access to Tidepool's custom resources. Every method throws KubeApiError on an API error, so callers
 * test `.notFound`, `.conflict` (stale resourceVersion: read again and retry) and `.alreadyExists`; `get*`
 * methods return undefined for a missing object instead. Writes send the object's resourceVersion, so a
 * write based on a stale read fails with a conflict rather than overwriting someone else's change.
 */
export class TidepoolClient {
  private readonly api: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  getPool(name: string): Promise<IPPool | undefined> {
    return kubeGetOptional(`get IPPool ${name}`, () =>
      this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: POOLS, name }),
    ) as Promise<IPPool | undefined>;
  }

  async listPools(): Promise<{ items: IPPool[]; resourceVersion: string | undefined }> {
    const list = (await kubeCall('list IPPools', () =>
      this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: POOLS }),
    )) as List<IPPool>;
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion };
  }

  createPool(name: string, spec: IPPoolSpec, labels?: Record<string, string>): Promise<IPPool> {
    const body: IPPool = { apiVersion: API_VERSION, kind: 'IPPool', metadata: { name, labels }, spec };
    return kubeCall(`create IPPool ${name}`, () =>
      this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: POOLS, body }),
    ) as Promise<IPPool>;
  }

  /** Replaces spec and metadata; fails with a conflict when `pool.metadata.resourceVersion` is stale. */
  replacePool(pool: IPPool): Promise<IPPool> {
    const name = pool.metadata.name;
    return kubeCall(`update IPPool ${name}`, () =>
      this.api.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: POOLS, name, body: pool }),
    ) as Promise<IPPool>;
  }

  /** Replaces the status; fails with a conflict when `pool.metadata.resourceVersion` is stale. */
  replacePoolStatus(pool: IPPool): Promise<IPPool> {
    const name = pool.metadata.name;
    return kubeCall(`update IPPool ${name} status`, () =>
      this.api.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: POOLS, name, body: pool }),
    ) as Promise<IPPool>;
  }

  async deletePool(name: string): Promise<void> {
    await kubeCall(`delete IPPool ${name}`, () =>
      this.api.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: POOLS, name }),
    );
  }

  getReservedIP(name: string): Promise<ReservedIP | undefined> {
    return kubeGetOptional(`get ReservedIP ${name}`, () =>
      this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: RESERVED, name }),
    ) as Promise<ReservedIP | undefined>;
  }

  async listReservedIPs(): Promise<ReservedIP[]> {
    const list = (await kubeCall('list ReservedIPs', () =>
      this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: RESERVED }),
    )) as List<ReservedIP>;
    return list.items;
  }

  createReservedIP(name: string, spec: ReservedIPSpec, labels?: Record<string, string>): Promise<ReservedIP> {
    const body: ReservedIP = { apiVersion: API_VERSION, kind: 'ReservedIP', metadata: { name, labels }, spec };
    return kubeCall(`create ReservedIP ${name}`, () =>
      this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: RESERVED, body }),
    ) as Promise<ReservedIP>;
  }

  /** Replaces spec and metadata; fails with a conflict when `reserved.metadata.resourceVersion` is stale. */
  replaceReservedIP(reserved: ReservedIP): Promise<ReservedIP> {
    const name = reserved.metadata.name;
    return kubeCall(`update ReservedIP ${name}`, () =>
      this.api.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: RESERVED, name, body: reserved }),
    ) as Promise<ReservedIP>;
  }

  /** Replaces the status; fails with a conflict when `reserved.metadata.resourceVersion` is stale. */
  replaceReservedIPStatus(reserved: ReservedIP): Promise<ReservedIP> {
    const name = reserved.metadata.name;
    return kubeCall(`update ReservedIP ${name} status`, () =>
      this.api.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: RESERVED, name, body: reserved }),
    ) as Promise<ReservedIP>;
  }

  async deleteReservedIP(name: string): Promise<void> {
    await kubeCall(`delete ReservedIP ${name}`, () =>
      this.api.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: RESERVED, name }),
    );
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
