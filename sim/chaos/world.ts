// The world a chaos run churns in: its own namespace, simulated nodes and pool, set up before the run and
// removed after it.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { formatIP, parseSubnet } from '../../src/ipam/ip.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { SimulatedKubelet } from '../kubelet.ts';
import { readRecords, type ChaosScope } from './facts.ts';

export interface ChaosNames {
  namespace: string;
  pool: string;
  nodes: string[];
}

export interface ChaosWorld extends ChaosScope {
  nodes: string[];
  kubelet: SimulatedKubelet;
}

/** Names no other run uses: the namespace, the pool and the nodes share one random tag. */
export function chaosNames(nodeCount: number): ChaosNames {
  const tag = randomBytes(3).toString('hex');
  return {
    namespace: `chaos-${tag}`,
    pool: `chaos-${tag}`,
    nodes: Array.from({ length: nodeCount }, (_, index) => `chaos-${tag}-${index}`),
  };
}

/** Creates the namespace and the pool, and starts the simulated kubelet on the nodes. */
export async function setUpWorld(
  kubeConfig: KubeConfig,
  { namespace, pool, nodes }: ChaosNames,
  settings: { poolSize: number; cni: { binary: string; agentSocket: string; spoolDir: string }; random: () => number },
): Promise<ChaosWorld> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const pools = new TidepoolClient(kubeConfig);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await waitForDefaultServiceAccount(core, namespace);
  const subnet = parseSubnet('10.250.0.0/16');
  const range = [1n, BigInt(settings.poolSize)].map((offset) => formatIP(subnet.family, subnet.first + offset));
  await pools.createPool(pool, { subnet: '10.250.0.0/16', ips: [range.join('-')] });
  const netconf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'underlay',
    type: 'macvlan',
    ipam: { type: 'tidepool', agent_socket: settings.cni.agentSocket, spool_dir: settings.cni.spoolDir },
  });
  const kubelet = new SimulatedKubelet({
    kubeConfig,
    nodes,
    namespace,
    cni: { binary: settings.cni.binary, cniPath: '/opt/cni/bin', netconf: () => netconf },
    retryMs: 2000,
    random: settings.random,
  });
  await kubelet.start();
  return { core, pools, namespace, pool, nodes, kubelet };
}

/** Deletes the pods (the kubelet stops them, so the pool empties), then the namespace, pool and nodes. */
export async function tearDownWorld(world: ChaosWorld, log: (line: string) => void): Promise<void> {
  const { core, pools, namespace, pool, kubelet } = world;
  await core.deleteCollectionNamespacedPod({ namespace }).catch(() => undefined);
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    const left = await readRecords(world).then((r) => r.records.length, () => -1);
    if (left === 0 && kubelet.listPods().length === 0) break;
    await sleep(1000);
  }
  await kubelet.stop();
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  const left = await pools.getPool(pool);
  if (left?.status?.allocatedIPs && Object.keys(left.status.allocatedIPs).length > 0) {
    log(`cleanup: pool ${pool} still records ${Object.keys(left.status.allocatedIPs).length} IPs after the pods were deleted; clearing them`);
    await pools.replacePoolStatus({ ...left, status: {} }).catch(() => undefined);
  }
  await pools.deletePool(pool).catch(() => undefined);
  await kubelet.removeNodes();
}

async function waitForDefaultServiceAccount(core: CoreV1Api, namespace: string): Promise<void> {
  for (const until = Date.now() + 60_000; Date.now() < until; await sleep(250)) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace });
      return;
    } catch {
      // the serviceaccount controller has not made it yet
    }
  }
  throw new Error(`namespace ${namespace} got no default ServiceAccount within 60 s`);
}
