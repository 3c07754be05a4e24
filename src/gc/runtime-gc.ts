import type { RuntimeGcInput, RuntimeGcPlan, StaleAttachment } from '../contract/runtime-gc.ts';
import type { IPPool } from '../k8s/types.ts';

/**
 * The runtime's GC, planned from the pools' records: every attachment (pod UID, container, interface) of
 * `input.network` on `input.node` that the runtime does not list is stale. Records of other nodes and other
 * networks, and records without a network (written before records carried one), are never the runtime's
 * to judge. A stale attachment with a record younger than `minRecordAgeMs` is left alone, as the sweep leaves
 * a young record: its ADD may still be in flight. A record without `allocatedAt` counts as old, as in the
 * sweep's verdict. Pure.
 */
export function planRuntimeGc(pools: readonly IPPool[], input: RuntimeGcInput, minRecordAgeMs: number, now: number): RuntimeGcPlan {
  const allocatedBefore = now - minRecordAgeMs;
  const valid = new Set(input.validAttachments.map((a) => attachmentKey(a.containerID, a.interface)));
  const stale = new Map<string, StaleAttachment & { young: boolean }>();
  for (const pool of pools) {
    for (const [ip, record] of Object.entries(pool.status?.allocatedIPs ?? {})) {
      if (record.node !== input.node || record.network !== input.network || !record.containerID || !record.interface) continue;
      if (valid.has(attachmentKey(record.containerID, record.interface))) continue;
      const key = `${record.podUID}/${attachmentKey(record.containerID, record.interface)}`;
      const [namespace = '', pod = ''] = record.pod.split('/');
      const attachment = stale.get(key) ?? {
        namespace,
        pod,
        podUID: record.podUID,
        containerID: record.containerID,
        interface: record.interface,
        ips: [],
        young: false,
      };
      attachment.ips.push({ ip, pool: pool.metadata.name });
      if (record.allocatedAt !== undefined && Date.parse(record.allocatedAt) > allocatedBefore) attachment.young = true;
      stale.set(key, attachment);
    }
  }
  const all = [...stale.values()];
  return {
    stale: all.filter((a) => !a.young).map(({ young: _young, ...attachment }) => attachment),
    tooYoung: all.filter((a) => a.young).length,
    allocatedBefore,
  };
}

function attachmentKey(containerID: string, interfaceName: string): string {
  return `${containerID}/${interfaceName}`;
}
