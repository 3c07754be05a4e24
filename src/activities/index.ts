import { ApplicationFailure } from '@temporalio/activity';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { nodeFacts, podFacts, statefulSetFacts, statefulSetOwner } from '../gc/facts.ts';
import { verdict, wantsOrdinal, type GcConfig, type Verdict } from '../gc/verdict.ts';
import type { ClusterCache } from '../k8s/cache.ts';
import type { TidepoolMetrics } from '../metrics.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { KubeApiError, kubeGetOptional } from '../k8s/errors.ts';
import { API_VERSION, IP_PROTECTION_FINALIZER, type EndpointIP, type IPPool, type PodEndpoint } from '../k8s/types.ts';
import { IPAMInputError } from '../ipam/ip.ts';
import { addressWithPrefix, poolAddresses } from '../ipam/pool.ts';
import { choosePools, PoolSelectionError } from '../ipam/selection.ts';
import { reservedSets } from '../ipam/reserved.ts';
import { PoolNotFoundError, type PoolWriter } from './pool-writer.ts';
import {
  FailureType,
  type AllocateIPsInput,
  type AllocateIPsResult,
  type HeldIP,
  type JudgePodInput,
  type PodEndpointInput,
  type ReleaseIPsInput,
  type ReleaseIPsResult,
  type RemoveEndpointInput,
  type StatefulSetOrdinalInput,
} from './types.ts';

export interface ActivityDependencies {
  kubeConfig: KubeConfig;
  writer: PoolWriter;
  cache: ClusterCache;
  gc: GcConfig;
  metrics: TidepoolMetrics;
}

function controllerOf(pod: V1Pod): { ownerKind?: string; ownerName?: string } {
  const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller);
  return owner ? { ownerKind: owner.kind, ownerName: owner.name } : {};
}

function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

function heldIP(pool: IPPool, ip: string): HeldIP {
  const addresses = poolAddresses(pool.metadata.name, pool.spec);
  return {
    ip,
    address: addressWithPrefix(addresses, ip),
    version: addresses.family,
    pool: pool.metadata.name,
    ...(pool.spec.gateway ? { gateway: pool.spec.gateway } : {}),
    ...(pool.spec.vlan !== undefined ? { vlan: pool.spec.vlan } : {}),
    ...(pool.spec.routes?.length ? { routes: pool.spec.routes } : {}),
  };
}

/**
 * The activities of the pod IP lifecycle. Each is idempotent, so Temporal may retry any of them after a crash
 * at any point: allocation is keyed on (pod UID, interface), release is compare-and-delete on (IP, pod UID).
 */
export function createActivities({ kubeConfig, writer, cache, gc, metrics }: ActivityDependencies) {
  const tidepool = new TidepoolClient(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);

  async function releaseOne(pool: string, ip: string, podUID: string, containerID: string | undefined) {
    try {
      return await writer.release(pool, ip, podUID, containerID);
    } catch (error) {
      if (error instanceof PoolNotFoundError) return { kind: 'not-held' as const };
      throw error;
    }
  }

  async function allocate(input: AllocateIPsInput): Promise<AllocateIPsResult> {
    const podName = `${input.namespace}/${input.pod}`;
    const pod = await kubeGetOptional(`get pod ${podName}`, () =>
      core.readNamespacedPod({ namespace: input.namespace, name: input.pod }),
    );
    if (!pod) throw nonRetryable(FailureType.PodNotFound, `pod ${podName} does not exist`);
    if (pod.metadata?.uid !== input.podUID) {
      throw nonRetryable(
        FailureType.PodUIDMismatch,
        `pod ${podName} now has UID ${pod.metadata?.uid}, but the ADD is for UID ${input.podUID} (a pod that was replaced)`,
      );
    }
    const namespace = await cache.namespace(input.namespace);
    const nodeName = pod.spec?.nodeName;
    const select = async (pools: readonly IPPool[]) => {
      const node =
        nodeName && pools.some((p) => p.spec.nodeAffinity)
          ? await kubeGetOptional(`get node ${nodeName}`, () => core.readNode({ name: nodeName }))
          : undefined;
      return choosePools({
        pod: { namespace: input.namespace, name: input.pod, labels: pod.metadata?.labels, annotations: pod.metadata?.annotations },
        namespace: { labels: namespace?.metadata?.labels, annotations: namespace?.metadata?.annotations },
        node: nodeName ? { name: nodeName, labels: node?.metadata?.labels } : undefined,
        interface: input.interface,
        netconfDefaults: input.netconfDefaults,
        pools,
      });
    };

    let pools = cache.pools();
    let choice;
    try {
      try {
        choice = await select(pools);
      } catch (error) {
        // The cache may not have seen a pool created a moment ago: decide again from a live list.
        if (!(error instanceof PoolSelectionError)) throw error;
        pools = (await tidepool.listPools()).items;
        choice = await select(pools);
      }
    } catch (error) {
      if (error instanceof PoolSelectionError) throw nonRetryable(FailureType.PoolSelection, error.message);
      throw error;
    }

    const reserved = reservedSets(cache.reservedIPs());
    const request = {
      pod: podName,
      podUID: input.podUID,
      containerID: input.containerID,
      interface: input.interface,
      ...(nodeName ? { node: nodeName } : {}),
      ...(input.adoptFromUID ? { adoptFromUID: input.adoptFromUID } : {}),
    };
    const byName = new Map(pools.map((p) => [p.metadata.name, p]));
    const ips: HeldIP[] = [];
    const newlyAllocated: { ip: string; pool: string }[] = [];
    for (const family of [4, 6] as const) {
      const candidates = choice.pools[family];
      if (!candidates) continue;
      const refusals: string[] = [];
      let got: HeldIP | undefined;
      for (const name of candidates) {
        let outcome;
        try {
          outcome = await writer.allocate(name, request, reserved[family]);
        } catch (error) {
          if (error instanceof PoolNotFoundError) {
            refusals.push(`${name} (deleted)`);
            continue;
          }
          if (error instanceof IPAMInputError) throw nonRetryable(FailureType.InvalidPool, error.message);
          throw error;
        }
        metrics.allocations.inc({ pool: name, outcome: outcome.kind });
        if (outcome.kind === 'allocated' || outcome.kind === 'existing') {
          got = heldIP(byName.get(name)!, outcome.ip);
          if (outcome.kind === 'allocated') newlyAllocated.push({ ip: outcome.ip, pool: name });
          break;
        }
        refusals.push(outcome.kind === 'exhausted' ? `${name} (every IP in use or reserved)` : `${name} (${outcome.reason})`);
      }
      if (!got) {
        for (const held of newlyAllocated) await releaseOne(held.pool, held.ip, input.podUID, input.containerID);
        throw nonRetryable(
          FailureType.NoFreeIP,
          `no IPv${family} address is free for pod ${podName} in pool${candidates.length > 1 ? 's' : ''} ${refusals.join(', ')}`,
        );
      }
      ips.push(got);
    }
    return { ips, ...(nodeName ? { node: nodeName } : {}), ...controllerOf(pod), source: choice.source };
  }

  return {
    async allocateIPs(input: AllocateIPsInput): Promise<AllocateIPsResult> {
      const stopTimer = metrics.allocationSeconds.startTimer();
      try {
        return await allocate(input);
      } catch (error) {
        if (error instanceof ApplicationFailure && error.type) metrics.allocationFailures.inc({ type: error.type });
        throw error;
      } finally {
        stopTimer();
      }
    },

    async releaseIPs(input: ReleaseIPsInput): Promise<ReleaseIPsResult> {
      const result: ReleaseIPsResult = { released: [], notHeld: [], heldByOther: [] };
      for (const { ip, pool } of input.ips) {
        const outcome = await releaseOne(pool, ip, input.podUID, input.containerID);
        if (outcome.kind === 'released') result.released.push(ip);
        else if (outcome.kind === 'not-held') result.notHeld.push(ip);
        else result.heldByOther.push({ ip, pod: outcome.holder.pod });
      }
      metrics.recordRelease(input.reason, result.released.length);
      return result;
    },

    /** Creates or rewrites the pod's PodEndpoint so that it lists exactly `input.interfaces`. */
    async writePodEndpoint(input: PodEndpointInput): Promise<void> {
      const ips: EndpointIP[] = Object.entries(input.interfaces).flatMap(([iface, { containerID, ips }]) =>
        ips.map((held) => ({
          interface: iface,
          address: held.address,
          pool: held.pool,
          ipVersion: held.version,
          ...(held.gateway ? { gateway: held.gateway } : {}),
          ...(held.vlan !== undefined ? { vlan: held.vlan } : {}),
          containerID,
        })),
      );
      const status = {
        podUID: input.podUID,
        ...(input.node ? { node: input.node } : {}),
        ...(input.ownerKind ? { ownerKind: input.ownerKind, ownerName: input.ownerName } : {}),
        ips,
      };
      // A StatefulSet pod's endpoint must outlive the pod object, so that its re-created pod keeps the IP.
      const ownerReferences =
        input.ownerKind === 'StatefulSet'
          ? []
          : [{ apiVersion: 'v1', kind: 'Pod', name: input.pod, uid: input.podUID, blockOwnerDeletion: false }];
      const endpoint = (metadata: PodEndpoint['metadata'] | undefined): PodEndpoint => ({
        apiVersion: API_VERSION,
        kind: 'PodEndpoint',
        metadata: { ...metadata, name: input.pod, namespace: input.namespace, finalizers: [IP_PROTECTION_FINALIZER], ownerReferences },
        status,
      });
      // Most pods have no endpoint yet: create first, and read only when one exists.
      try {
        await tidepool.createPodEndpoint(endpoint(undefined));
      } catch (error) {
        if (error instanceof KubeApiError && error.notFound) {
          // Only the namespace can be missing on a create: it was deleted, and the pod with it.
          throw ApplicationFailure.create({
            type: 'PodNotFound',
            message: `namespace ${input.namespace} is gone, and pod ${input.namespace}/${input.pod} with it: no PodEndpoint to write`,
            nonRetryable: true,
          });
        }
        if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
        const existing = await tidepool.getPodEndpoint(input.namespace, input.pod);
        if (existing) await tidepool.replacePodEndpoint(endpoint(existing.metadata));
        else await tidepool.createPodEndpoint(endpoint(undefined));
      }
    },

    /** Removes interfaces from the pod's PodEndpoint, and the endpoint itself once it lists none. */
    async removePodEndpoint(input: RemoveEndpointInput): Promise<void> {
      const existing = await tidepool.getPodEndpoint(input.namespace, input.pod);
      if (!existing || existing.status.podUID !== input.podUID) return;
      const removed = input.interfaces;
      const ips = removed ? existing.status.ips.filter((ip) => !removed.includes(ip.interface)) : [];
      if (ips.length > 0) {
        await tidepool.replacePodEndpoint({ ...existing, status: { ...existing.status, ips } });
        return;
      }
      await tidepool.replacePodEndpoint({
        ...existing,
        metadata: { ...existing.metadata, finalizers: (existing.metadata.finalizers ?? []).filter((f) => f !== IP_PROTECTION_FINALIZER) },
      });
      if (!existing.metadata.deletionTimestamp) {
        await tidepool.deletePodEndpoint(input.namespace, input.pod).catch((error: unknown) => {
          if (!(error instanceof KubeApiError && error.notFound)) throw error;
        });
      }
    },

    /** The reclaim verdict for a lifecycle's IPs, from the pod, its node and its StatefulSet read live. */
    async judgePod(input: JudgePodInput): Promise<Verdict> {
      const podName = `${input.namespace}/${input.pod}`;
      const pod = await kubeGetOptional(`get pod ${podName}`, () => core.readNamespacedPod({ namespace: input.namespace, name: input.pod }));
      const nodeName = pod?.spec?.nodeName;
      const node = nodeName ? await kubeGetOptional(`get node ${nodeName}`, () => core.readNode({ name: nodeName })) : undefined;
      const setName = statefulSetOwner(pod) ?? (input.ownerKind === 'StatefulSet' ? input.ownerName : undefined);
      const set = setName
        ? await kubeGetOptional(`get StatefulSet ${input.namespace}/${setName}`, () =>
            apps.readNamespacedStatefulSet({ namespace: input.namespace, name: setName }),
          )
        : undefined;
      return verdict({
        record: { ip: '', pool: '', pod: podName, podUID: input.podUID, ...(input.allocatedAt ? { allocatedAt: input.allocatedAt } : {}) },
        pod: pod ? podFacts(pod) : undefined,
        node: node ? nodeFacts(node) : undefined,
        statefulSet: setName ? statefulSetFacts(setName, set) : undefined,
        confirmedLive: true,
        config: gc,
        now: Date.now(),
      });
    },

    /** Whether the StatefulSet still wants the pod's ordinal, so the pod keeps its IP across re-creation. */
    async statefulSetWantsPod(input: StatefulSetOrdinalInput): Promise<boolean> {
      const set = await kubeGetOptional(`get StatefulSet ${input.namespace}/${input.statefulSet}`, () =>
        apps.readNamespacedStatefulSet({ namespace: input.namespace, name: input.statefulSet }),
      );
      return wantsOrdinal(statefulSetFacts(input.statefulSet, set), input.pod);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
