import { ApplicationFailure } from '@temporalio/activity';
import type {
  AllocateIPsInput,
  AllocateIPsResult,
  AttachInterfaceInput,
  DetachInterfaceInput,
  DetachInterfaceResult,
  JudgePodInput,
  PodEndpointInput,
  ReleaseIPsInput,
  ReleaseIPsResult,
  RemoveEndpointInput,
} from '../contract/lifecycle.ts';
import type { DelVerdict } from '../gc/verdict.ts';

interface Parts {
  allocateIPs(input: AllocateIPsInput): Promise<AllocateIPsResult>;
  releaseIPs(input: ReleaseIPsInput): Promise<ReleaseIPsResult>;
  writePodEndpoint(input: PodEndpointInput): Promise<void>;
  removePodEndpoint(input: RemoveEndpointInput): Promise<void>;
  judgeDel(input: JudgePodInput): Promise<DelVerdict>;
}

/**
 * attachInterface and detachInterface: a CNI ADD's and a CNI DEL's whole work in one local activity each, so
 * that each costs its lifecycle one workflow activation and one marker instead of one per step. Each is
 * idempotent as its parts are: a retry allocates the same record again (keyed on pod UID and interface), and
 * releases by compare-and-delete.
 */
export function createAttachmentActivities(parts: Parts) {
  return {
    /**
     * Allocates the interface's IPs and writes the pod's PodEndpoint with them. An endpoint that can never be
     * written gives the IPs back (EndpointNotWritten) before the failure, so a failed ADD holds nothing.
     */
    async attachInterface(input: AttachInterfaceInput): Promise<AllocateIPsResult> {
      const { otherInterfaces, endpointExists, ...allocation } = input;
      const result = await parts.allocateIPs(allocation);
      try {
        await parts.writePodEndpoint({
          namespace: input.namespace,
          pod: input.pod,
          podUID: input.podUID,
          ...(result.node ? { node: result.node } : {}),
          ...(result.ownerKind ? { ownerKind: result.ownerKind, ownerName: result.ownerName } : {}),
          interfaces: { ...otherInterfaces, [input.interface]: { containerID: input.containerID, ips: result.ips, ...(input.network ? { network: input.network } : {}) } },
          ...(endpointExists ? { exists: true } : {}),
        });
      } catch (error) {
        // A retry allocates the same record again and writes the endpoint then; only an endpoint that can never
        // be written (the namespace is gone) gives the IPs back, as the workflow did when this was two activities.
        if (!(error instanceof ApplicationFailure && error.nonRetryable)) throw error;
        const ips = result.ips.map(({ ip, pool }) => ({ ip, pool }));
        await parts.releaseIPs({ namespace: input.namespace, pod: input.pod, podUID: input.podUID, containerID: input.containerID, ips, reason: 'EndpointNotWritten' });
        throw error;
      }
      return result;
    },

    /** Judges the DEL (src/gc/verdict.ts `delVerdict`); unless the IPs are kept, releases them and the interface's PodEndpoint entries. */
    async detachInterface(input: DetachInterfaceInput): Promise<DetachInterfaceResult> {
      const { namespace, pod, podUID } = input;
      const verdict = await parts.judgeDel({ namespace, pod, podUID, ...(input.ownerKind ? { ownerKind: input.ownerKind, ownerName: input.ownerName } : {}) });
      if (verdict.action === 'keep') return verdict;
      const released = await parts.releaseIPs({ namespace, pod, podUID, containerID: input.containerID, ips: input.ips, reason: 'CNIDel' });
      await parts.removePodEndpoint({ namespace, pod, podUID, interfaces: [input.interface] });
      return { action: 'release', ...released };
    },
  };
}
