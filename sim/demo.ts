// `./dev demo`: Tidepool's main job, played on the stack `./dev up` started, in about a minute. A pool and a
// Deployment on two simulated nodes; a pod deleted while its runtime never calls CNI DEL, and its IP reclaimed
// within seconds; a node powered off, and its pod's IP reclaimed once the eviction's grace has passed; then
// that IP's history, and where to see it in the Temporal UI. Each step says what happened and what to look at.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { CNI_BINARY } from '../scripts/build-cni.ts';
import { TidepoolClient } from '../src/k8s/client.ts';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { podLifecycleWorkflowId } from '../src/temporal/names.ts';
import { SimulatedKubelet } from './kubelet.ts';
import { isRunning } from './scenarios.ts';
import { stackNetconf } from './stack-node.ts';
import { stackConfig, stackPaths } from '../stack/config.ts';
import { readStackInfo } from '../stack/stack.ts';

const NAMESPACE = 'tidepool-demo';
const POOL = 'demo';
const NODES = ['demo-node-a', 'demo-node-b'];
const GRACE_SECONDS = 10;
const started = Date.now();

function say(line: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(250);
  }
}

/** What the demo leaves to look at: the IP of the dead node's pod, and the lifecycle that reclaimed it. */
export interface DemoResult {
  ip: string;
  workflowId: string;
  temporalUi: string;
  temporalNamespace: string;
}

export async function runDemo(): Promise<DemoResult> {
  const info = readStackInfo();
  if (!info?.agentSocket) throw new Error('the local stack with Tidepool is not running; start it with ./dev up');
  process.env.KUBECONFIG = info.kubeconfig;
  const kubeConfig = loadKubeConfig(info.kubeconfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const tidepool = new TidepoolClient(kubeConfig);
  const holderOf = async (ip: string) => (await tidepool.getPool(POOL))?.status?.allocatedIPs?.[ip];

  if (await core.readNamespace({ name: NAMESPACE }).catch(() => undefined)) {
    say(`removing the previous demo's namespace ${NAMESPACE}`);
    for (const endpoint of await tidepool.listPodEndpoints(NAMESPACE)) {
      await tidepool.replacePodEndpoint({ ...endpoint, metadata: { ...endpoint.metadata, finalizers: [] } }).catch(() => undefined);
    }
    await core.deleteNamespace({ name: NAMESPACE });
    await until('the old namespace to go', async () => ((await core.readNamespace({ name: NAMESPACE }).catch(() => undefined)) ? undefined : true));
  }
  const oldPool = await tidepool.getPool(POOL);
  if (oldPool) {
    await tidepool.replacePoolStatus({ ...oldPool, status: {} });
    await tidepool.deletePool(POOL);
    await until('the old pool to go', async () => ((await tidepool.getPool(POOL)) ? undefined : true));
  }

  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  await until('the namespace’s default ServiceAccount', async () => core.readNamespacedServiceAccount({ namespace: NAMESPACE, name: 'default' }).catch(() => undefined));
  await tidepool.createPool(POOL, { subnet: '10.99.0.0/24', ips: ['10.99.0.10-10.99.0.19'], gateway: '10.99.0.1' });
  say(`1. IPPool ${POOL}: 10 IPs, 10.99.0.10-10.99.0.19 (kubectl get tpp ${POOL})`);

  const kubelet = new SimulatedKubelet({
    kubeConfig,
    nodes: NODES,
    namespace: NAMESPACE,
    cni: { binary: CNI_BINARY, cniPath: path.dirname(CNI_BINARY), netconf: (node) => stackNetconf(info.agentSocket!, stackPaths(stackConfig).cniSpool, node) },
    retryMs: 1000,
  });
  await kubelet.start();
  say(`   simulated nodes ${NODES.join(', ')}: each runs its pods' sandboxes through tidepool-cni and the stack's agent`);
  const labels = { app: 'web' };
  const tolerations = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'].map((key) => ({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 0 }));
  await apps.createNamespacedDeployment({
    namespace: NAMESPACE,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 3,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [POOL] }) } },
          spec: { containers: [{ name: 'web', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: GRACE_SECONDS, tolerations },
        },
      },
    },
  });
  const running = async (): Promise<V1Pod[] | undefined> => {
    const pods = kubelet.listPods().filter((pod) => isRunning(pod) && !pod.metadata?.deletionTimestamp);
    return pods.length === 3 ? pods : undefined;
  };
  const pods = await until('3 Running pods', running);
  say(`2. Deployment web: 3 pods Running (kubectl get pods -n ${NAMESPACE} -o wide)`);
  for (const pod of pods) say(`   ${pod.metadata!.name} on ${pod.spec!.nodeName}: ${pod.status!.podIP}`);

  // A lost DEL: the runtime stops the pod but never calls the plugin.
  kubelet.setDropDelShare(1);
  const victim = pods[0]!;
  const victimIP = victim.status!.podIP!;
  say(`3. deleting ${victim.metadata!.name}; its runtime will never call CNI DEL for it`);
  const deleted = Date.now();
  await core.deleteNamespacedPod({ namespace: NAMESPACE, name: victim.metadata!.name! });
  await until(`${victimIP} to be free`, async () => ((await holderOf(victimIP))?.podUID === victim.metadata!.uid ? undefined : true));
  say(`   ${victimIP} is free again ${((Date.now() - deleted) / 1000).toFixed(1)} s later: the controller saw the pod go and its lifecycle reclaimed the IP (PodNotFound)`);
  kubelet.setDropDelShare(0);

  // A dead node: no heartbeats; the node controller marks it NotReady and the taint evicts its pod.
  const survivors = await until('the replacement pod', running);
  const onNode = survivors.find((pod) => pod.metadata!.uid !== victim.metadata!.uid)!;
  const node = onNode.spec!.nodeName!;
  const nodeIP = onNode.status!.podIP!;
  kubelet.powerOff(node);
  say(`4. powered off ${node}, where ${onNode.metadata!.name} holds ${nodeIP}`);
  await until(`${node} to go NotReady`, async () => {
    const ready = (await core.readNode({ name: node })).status?.conditions?.find((c) => c.type === 'Ready');
    return ready?.status === 'True' ? undefined : true;
  });
  say(`   ${node} is NotReady (kubectl get nodes)`);
  const deletion = await until(`${onNode.metadata!.name} to be evicted`, async () => {
    const pod = await core.readNamespacedPod({ namespace: NAMESPACE, name: onNode.metadata!.name! }).catch(() => undefined);
    return pod?.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : undefined;
  });
  say(`   ${onNode.metadata!.name} was evicted; it stays Terminating on the dead node, its grace ends at ${new Date(deletion).toISOString()}`);
  await until(`${nodeIP} to be free`, async () => ((await holderOf(nodeIP))?.podUID === onNode.metadata!.uid ? undefined : true), 120_000);
  say(`   ${nodeIP} is free again ${((Date.now() - deletion) / 1000).toFixed(1)} s after the grace ended (the extra delay is 5 s): TerminatingOnNotReadyNode`);

  say(`5. the history of ${nodeIP}:`);
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(stackConfig.root, 'src', 'cli', 'main.ts'), 'history', nodeIP], {
    env: { ...process.env, TEMPORAL_ADDRESS: info.temporalAddress, TEMPORAL_NAMESPACE: info.temporalNamespace },
  });
  console.log(stdout.trimEnd());
  const query = encodeURIComponent(`TidepoolIPs = '${nodeIP}'`);
  say(info.temporalUi ? `   in the Temporal UI: ${info.temporalUi}/namespaces/${info.temporalNamespace}/workflows?query=${query}` : '   (the real Temporal server runs without a UI here)');

  kubelet.powerOn(node);
  await apps.deleteNamespacedDeployment({ namespace: NAMESPACE, name: 'web' });
  await until('the demo pods to stop', async () => (kubelet.listPods().length === 0 ? true : undefined), 60_000);
  await kubelet.stop();
  await kubelet.removeNodes();
  say(`done. The pool ${POOL} and namespace ${NAMESPACE} stay for a look: kubectl tidepool status -a --pool ${POOL}; kubectl get events -A`);
  return { ip: nodeIP, workflowId: podLifecycleWorkflowId(NAMESPACE, onNode.metadata!.name!), temporalUi: info.temporalUi ?? '', temporalNamespace: info.temporalNamespace };
}

if (import.meta.main) {
  runDemo().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`demo: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
