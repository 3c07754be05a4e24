import { ApplicationFailure, log } from '@temporalio/activity';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { FailureType } from '../contract/failures.ts';
import { isReclaimReason } from '../contract/release-reasons.ts';
import type { AllocateIPsInput, AllocateIPsResult, PodIP, ReleaseIPsInput, ReleaseIPsResult } from '../contract/lifecycle.ts';
import { allocatePodIPs, NoFreeIPError, releaseRecord, type PoolStore } from '../ipam/allocator.ts';
import { IPAMInputError } from '../ipam/ip.ts';
import { addressWithPrefix, poolAddresses, poolRoutes } from '../ipam/pool.ts';
import { reservedSets } from '../ipam/reserved.ts';
import { choosePools, PoolSelectionError } from '../ipam/selection.ts';
import type { ClusterCache } from '../k8s/cache.ts';
import { kubeGetOptional } from '../k8s/errors.ts';
import { EventRecorder } from '../k8s/events.ts';
import { allocationFailed, ipsReclaimed, poolExhausted } from '../k8s/tidepool-events.ts';
import type { IPPool } from '../k8s/types.ts';
import type { TidepoolMetrics } from '../metrics.ts';

export function nonRetryable(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

function controllerOf(pod: V1Pod): { ownerKind?: string; ownerName?: string } {
  const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller);
  return owner ? { ownerKind: owner.kind, ownerName: owner.name } : {};
}

function podIP(pool: IPPool, ip: string): PodIP {
  const addresses = poolAddresses(pool.metadata.name, pool.spec);
  const routes = poolRoutes(pool.spec, addresses.family);
  return {
    ip,
    address: addressWithPrefix(addresses, ip),
    version: addresses.family,
    pool: pool.metadata.name,
    ...(pool.spec.gateway ? { gateway: pool.spec.gateway } : {}),
    ...(pool.spec.vlan !== undefined ? { vlan: pool.spec.vlan } : {}),
    ...(routes.length > 0 ? { routes } : {}),
  };
}

/**
 * allocateIPs and releaseIPs: the pod read live (its UID checked), its namespace and the pools from the
 * watch-fed caches, and the allocator (src/ipam/allocator.ts) over the pool store. Each failure the ADD can
 * do nothing about is a non-retryable ApplicationFailure of a FailureType.
 */
export function createAllocationActivities({ kubeConfig, store, cache, metrics }: { kubeConfig: KubeConfig; store: PoolStore; cache: ClusterCache; metrics: TidepoolMetrics }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const events = new EventRecorder(kubeConfig);
  const warn = (message: string, fields: Record<string, unknown>) => log.warn(message, fields);

  async function allocate(input: AllocateIPsInput): Promise<AllocateIPsResult> {
    const podName = `${input.namespace}/${input.pod}`;
    const pod = await kubeGetOptional(`get pod ${podName}`, () => core.readNamespacedPod({ namespace: input.namespace, name: input.pod }));
    if (!pod) throw nonRetryable(FailureType.PodNotFound, `pod ${podName} does not exist`);
    if (pod.metadata?.uid !== input.podUID) {
      throw nonRetryable(
        FailureType.PodUIDMismatch,
        `pod ${podName} now has UID ${pod.metadata?.uid}, but the ADD is for UID ${input.podUID} (a pod that was replaced)`,
      );
    }
    const namespace = await cache.namespace(input.namespace);
    // The node the pod's spec names is where it runs; the ADD's node only stands in for a spec without one.
    const nodeName = pod.spec?.nodeName ?? input.node;
    const choose = async (pools: readonly IPPool[]) => {
      const node =
        nodeName && pools.some((p) => p.spec.nodeAffinity)
          ? await kubeGetOptional(`get node ${nodeName}`, () => core.readNode({ name: nodeName }))
          : undefined;
      return choosePools({
        pod: { namespace: input.namespace, name: input.pod, labels: pod.metadata?.labels, annotations: pod.metadata?.annotations },
        namespace: { labels: namespace?.metadata?.labels, annotations: namespace?.metadata?.annotations },
        node: nodeName ? { name: nodeName, labels: node?.metadata?.labels } : undefined,
        interface: input.interface,
        defaultPools: input.defaultPools,
        pools,
      });
    };
    const request = {
      pod: podName,
      podUID: input.podUID,
      containerID: input.containerID,
      interface: input.interface,
      ...(nodeName ? { node: nodeName } : {}),
      ...(input.network ? { network: input.network } : {}),
      ...(input.adoptFromUID ? { adoptFromUID: input.adoptFromUID } : {}),
    };
    try {
      const exhausted: string[] = [];
      const allocation = await allocatePodIPs(store, choose, request, reservedSets(cache.reservedIPs()), (pool, outcome) => {
        metrics.allocations.inc({ pool, outcome: outcome.kind });
        if (outcome.kind === 'exhausted') exhausted.push(pool);
      }).finally(() => Promise.all(exhausted.map((pool) => events.tryRecord(poolExhausted(pool, podName), warn))));
      return {
        ips: allocation.ips.map(({ pool, ip }) => podIP(pool, ip)),
        ...(nodeName ? { node: nodeName } : {}),
        ...controllerOf(pod),
        source: allocation.source,
      };
    } catch (error) {
      if (error instanceof PoolSelectionError) throw nonRetryable(FailureType.PoolSelection, error.message);
      if (error instanceof NoFreeIPError) throw nonRetryable(FailureType.NoFreeIP, error.message);
      if (error instanceof IPAMInputError) throw nonRetryable(FailureType.InvalidPool, error.message);
      throw error;
    }
  }

  return {
    async allocateIPs(input: AllocateIPsInput): Promise<AllocateIPsResult> {
      const stopTimer = metrics.allocationSeconds.startTimer();
      try {
        return await allocate(input);
      } catch (error) {
        if (error instanceof ApplicationFailure && error.type) {
          metrics.allocationFailures.inc({ type: error.type });
          await events.tryRecord(allocationFailed(`${input.namespace}/${input.pod}`, input.podUID, error.type, error.message), warn);
        }
        throw error;
      } finally {
        stopTimer();
      }
    },

    async releaseIPs(input: ReleaseIPsInput): Promise<ReleaseIPsResult> {
      const result: ReleaseIPsResult = { released: [], notHeld: [], heldByOther: [] };
      for (const { ip, pool } of input.ips) {
        const outcome = await releaseRecord(store, pool, ip, input.podUID, input.containerID);
        if (outcome.kind === 'released') result.released.push(ip);
        else if (outcome.kind === 'not-held') result.notHeld.push(ip);
        else result.heldByOther.push({ ip, pod: outcome.holder.pod });
      }
      metrics.recordRelease(input.reason, result.released.length);
      if (isReclaimReason(input.reason)) {
        for (const reclaimed of ipsReclaimed(input.ips, result.released, `${input.namespace}/${input.pod}`, input.podUID, input.reason)) await events.tryRecord(reclaimed, warn);
      }
      return result;
    },
  };
}
