// What a chaos run reads back from the cluster: the pool's records, the namespace's pods and, for the end
// state, the PodEndpoints and the running lifecycles too.
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import type { TidepoolClient } from '../../src/k8s/client.ts';
import { TidepoolIPs, TidepoolPod, TidepoolPodUID, TidepoolState } from '../../src/temporal/names.ts';
import type { FinalFacts, PodFact, RecordFact } from '../invariants.ts';
import { isRunning } from '../scenarios.ts';

/** The namespace and the pool a chaos run owns, and the clients it reads and writes them with. */
export interface ChaosScope {
  core: CoreV1Api;
  pools: TidepoolClient;
  namespace: string;
  pool: string;
}

export async function readRecords({ pools, pool }: ChaosScope): Promise<{ records: RecordFact[]; count?: number }> {
  const status = (await pools.getPool(pool))?.status;
  const records = Object.entries(status?.allocatedIPs ?? {}).map(([ip, record]) => ({ pool, ip, pod: record.pod, podUID: record.podUID }));
  return { records, ...(status?.allocatedIPCount !== undefined ? { count: status.allocatedIPCount } : {}) };
}

export async function readPods({ core, namespace }: ChaosScope): Promise<PodFact[]> {
  return (await core.listNamespacedPod({ namespace })).items.map(podFact);
}

function podFact(pod: V1Pod): PodFact {
  return {
    pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`,
    uid: pod.metadata!.uid!,
    gone: Boolean(pod.metadata?.deletionTimestamp) || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed',
    ready: isRunning(pod),
    ips: (pod.status?.podIPs ?? []).map((entry) => entry.ip),
  };
}

export async function readFinalFacts(scope: ChaosScope, temporal: { address: string; namespace: string }): Promise<FinalFacts> {
  const { pools, namespace, pool } = scope;
  const { records, count } = await readRecords(scope);
  const pods = await readPods(scope);
  const endpoints = (await pools.listPodEndpoints(namespace)).map((endpoint) => ({
    pod: `${endpoint.metadata.namespace}/${endpoint.metadata.name}`,
    podUID: endpoint.status.podUID,
    ips: endpoint.status.ips.map((ip) => ip.address.split('/')[0]!),
  }));
  const connection = await Connection.connect({ address: temporal.address, connectTimeout: 5000 });
  try {
    const client = new Client({ connection, namespace: temporal.namespace });
    const lifecycles = [];
    for await (const execution of client.workflow.list({ query: `TidepoolPools = '${pool}' AND ExecutionStatus = 'Running'` })) {
      const attributes = execution.typedSearchAttributes;
      lifecycles.push({
        workflowId: execution.workflowId,
        pod: attributes.get(TidepoolPod),
        podUID: attributes.get(TidepoolPodUID),
        state: attributes.get(TidepoolState),
        ips: attributes.get(TidepoolIPs) ?? [],
      });
    }
    return { pods, records, pools: [{ pool, records: records.length, ...(count !== undefined ? { allocatedIPCount: count } : {}) }], endpoints, lifecycles };
  } finally {
    await connection.close();
  }
}
