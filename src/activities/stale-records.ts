import { log } from '@temporalio/activity';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ReleaseStaleRecordsInput, ReleaseStaleRecordsResult } from '../contract/lifecycle.ts';
import { endpointFacts, podFacts, recordFacts } from '../gc/facts.ts';
import { staleRecordVerdict, type GcConfig } from '../gc/verdict.ts';
import { releaseRecord, type PoolStore } from '../ipam/allocator.ts';
import { TidepoolClient } from '../k8s/client.ts';
import { kubeGetOptional } from '../k8s/errors.ts';
import { EventRecorder } from '../k8s/events.ts';
import { ipsReclaimed } from '../k8s/tidepool-events.ts';
import type { TidepoolMetrics } from '../metrics.ts';

/** releaseStaleRecords: a live pod's records that nothing it uses names, judged again live and released. */
export function createStaleRecordActivities({ kubeConfig, store, gc, metrics }: { kubeConfig: KubeConfig; store: PoolStore; gc: GcConfig; metrics: TidepoolMetrics }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const tidepool = new TidepoolClient(kubeConfig);
  const events = new EventRecorder(kubeConfig);
  return {
    /**
     * Reads the pod, its PodEndpoint and each record live, and releases a record only while the stale verdict
     * still holds, by compare-and-delete on the pod UID and the container the record names. The lifecycle runs
     * this between its own ADDs and DELs, so no ADD of this pod is writing a record meanwhile.
     */
    async releaseStaleRecords(input: ReleaseStaleRecordsInput): Promise<ReleaseStaleRecordsResult> {
      const result: ReleaseStaleRecordsResult = { released: [], notHeld: [], heldByOther: [], inUse: [] };
      const podName = `${input.namespace}/${input.pod}`;
      const pod = await kubeGetOptional(`get pod ${podName}`, () => core.readNamespacedPod({ namespace: input.namespace, name: input.pod }));
      const endpoint = await tidepool.getPodEndpoint(input.namespace, input.pod);
      for (const { ip, pool } of input.ips) {
        const record = (await tidepool.getPool(pool))?.status?.allocatedIPs?.[ip];
        if (!record || record.podUID !== input.podUID) {
          if (record) result.heldByOther.push({ ip, pod: record.pod });
          else result.notHeld.push(ip);
          continue;
        }
        const decision = staleRecordVerdict({
          record: recordFacts(pool, ip, record),
          pod: pod ? podFacts(pod) : undefined,
          endpoint: endpoint ? endpointFacts(endpoint) : undefined,
          config: gc,
          now: Date.now(),
        });
        if (decision?.action !== 'reclaim') {
          result.inUse.push(ip);
          continue;
        }
        const outcome = await releaseRecord(store, pool, ip, input.podUID, record.containerID);
        if (outcome.kind === 'released') result.released.push(ip);
        else if (outcome.kind === 'not-held') result.notHeld.push(ip);
        else result.heldByOther.push({ ip, pod: outcome.holder.pod });
      }
      metrics.recordRelease('StaleRecord', result.released.length);
      if (result.released.length > 0) log.warn('released stale records of a live pod', { pod: podName, podUID: input.podUID, ips: result.released });
      for (const reclaimed of ipsReclaimed(input.ips, result.released, podName, input.podUID, 'StaleRecord')) {
        await events.tryRecord(reclaimed, (message, fields) => log.warn(message, fields));
      }
      return result;
    },
  };
}
