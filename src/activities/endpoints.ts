import type { KubeConfig } from '@kubernetes/client-node';
import { FailureType } from '../contract/failures.ts';
import type { PodEndpointInput, RemoveEndpointInput } from '../contract/lifecycle.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { KubeApiError } from '../k8s/errors.ts';
import { API_VERSION, IP_PROTECTION_FINALIZER, type EndpointIP, type PodEndpoint } from '../k8s/types.ts';
import { nonRetryable } from './allocation.ts';

/** writePodEndpoint and removePodEndpoint: the PodEndpoint, the record of a pod's IPs that outlives a lost pool status. */
export function createEndpointActivities({ kubeConfig }: { kubeConfig: KubeConfig }) {
  const tidepool = new TidepoolClient(kubeConfig);
  return {
    /** Creates or rewrites the pod's PodEndpoint so that it lists exactly `input.interfaces`. */
    async writePodEndpoint(input: PodEndpointInput): Promise<void> {
      const ips: EndpointIP[] = Object.entries(input.interfaces).flatMap(([iface, { containerID, ips, network }]) =>
        ips.map((held) => ({
          interface: iface,
          address: held.address,
          pool: held.pool,
          ipVersion: held.version,
          ...(held.gateway ? { gateway: held.gateway } : {}),
          ...(held.vlan !== undefined ? { vlan: held.vlan } : {}),
          containerID,
          ...(network ? { network } : {}),
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
      const create = async () => {
        try {
          await tidepool.createPodEndpoint(endpoint(undefined));
        } catch (error) {
          if (error instanceof KubeApiError && error.notFound) {
            // Only the namespace can be missing on a create: it was deleted, and the pod with it.
            throw nonRetryable(
              FailureType.PodNotFound,
              `namespace ${input.namespace} is gone, and pod ${input.namespace}/${input.pod} with it: no PodEndpoint to write`,
            );
          }
          throw error;
        }
      };
      const replace = async () => {
        const existing = await tidepool.getPodEndpoint(input.namespace, input.pod);
        if (existing) await tidepool.replacePodEndpoint(endpoint(existing.metadata));
        else await create();
      };
      if (input.exists) return replace();
      // Most pods have no endpoint yet: create first, and read only when one exists.
      try {
        await create();
      } catch (error) {
        if (!(error instanceof KubeApiError && error.alreadyExists)) throw error;
        await replace();
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
  };
}
