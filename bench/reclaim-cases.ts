import { setTimeout as sleep } from 'node:timers/promises';
import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { SimulatedKubelet } from '../sim/kubelet.ts';
import { isRunning } from '../sim/scenarios.ts';
import type { PreparedIpam } from './ipams.ts';

/** How a pod disappears without its CNI DEL; the IPAM must free its IP by itself. */
export const CASES = [
  'del-dropped',
  'force-deleted',
  'namespace-deleted',
  'terminating-on-ready-node',
  'on-powered-off-node',
  'job-succeeded',
  'dirty-record',
  'reclaimer-killed',
] as const;
export type CaseName = (typeof CASES)[number];

export const CASE_DESCRIPTIONS: Record<CaseName, string> = {
  'del-dropped': 'pods deleted; the runtime stops them without a CNI DEL, the deletion completes',
  'force-deleted': 'pods force-deleted (grace 0); no CNI DEL',
  'namespace-deleted': "the pods' namespace deleted; no CNI DEL",
  'terminating-on-ready-node': 'pods deleted on a Ready node whose runtime hangs: they stay Terminating',
  'on-powered-off-node': 'node powered off until NotReady, then its pods deleted: they stay Terminating',
  'job-succeeded': "a Job's pods Succeeded; the sandbox teardown's CNI DEL dropped",
  'dirty-record': "records for pods that never existed, written into the pool's status",
  'reclaimer-killed': "the reclaimer (Tidepool's worker, Spiderpool's controller) SIGKILLed, pods deleted without DEL while it is down, then restarted",
};

/** Pods that keep running beside the victims: an IPAM must never free their IPs. */
const BYSTANDERS = 2;

/** One IP the case expects the IPAM to free: from `startedAt` (epoch ms) to `freedAt`. */
export interface TrackedIP {
  id: string;
  ip: string;
  startedAt?: number;
  freedAt?: number;
}

export interface CaseRun {
  name: CaseName;
  namespace: string;
  node: string;
  kubelet: SimulatedKubelet;
  tracked: TrackedIP[];
  /** Bystander pod name → its IP, once it runs. */
  bystanders: Map<string, string>;
  /** Bystander IPs the IPAM stopped recording while their pod was alive and not terminating. */
  liveReleased: Set<string>;
  /** When the case's action ran (epoch ms). */
  startedAt?: number;
}

export interface CaseSettings {
  kubeConfig: KubeConfig;
  ipam: PreparedIpam;
  victims: number;
  graceSeconds: number;
}

/** The IPs a case's pods take from the pool: its victims (or dirty records) and its bystanders. */
export function ipsNeeded(name: CaseName, victims: number): number {
  return victims + (name === 'namespace-deleted' ? 0 : BYSTANDERS);
}

export function podSpec(graceSeconds: number, restartPolicy?: 'Never'): V1PodSpec {
  return { containers: [{ name: 'app', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: graceSeconds, ...(restartPolicy ? { restartPolicy } : {}) };
}

/** Creates the case's namespace, its node's kubelet (every CNI DEL dropped) and its pods. */
export async function setUpCase(settings: CaseSettings, name: CaseName, namespace: string, node: string): Promise<CaseRun> {
  const { kubeConfig, ipam, victims } = settings;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const kubelet = new SimulatedKubelet({ kubeConfig, nodes: [node], namespace, cni: { binary: ipam.binary, cniPath: ipam.cniPath, netconf: ipam.netconf, sandboxNetns: ipam.sandboxNetns } });
  kubelet.setDropDelShare(1);
  await kubelet.start();
  const run: CaseRun = { name, namespace, node, kubelet, tracked: [], bystanders: new Map(), liveReleased: new Set() };
  const annotations = ipam.podAnnotations ?? {};
  const createPod = (pod: string) =>
    core.createNamespacedPod({ namespace, body: { metadata: { name: pod, annotations }, spec: podSpec(settings.graceSeconds) } });
  const bystanderCount = ipsNeeded(name, victims) - victims;
  for (let index = 0; index < bystanderCount; index++) {
    await createPod(`bystander-${index}`);
    run.bystanders.set(`bystander-${index}`, '');
  }
  if (name === 'job-succeeded') {
    await kubeConfig.makeApiClient(BatchV1Api).createNamespacedJob({
      namespace,
      body: {
        metadata: { name: 'job' },
        spec: { completions: victims, parallelism: victims, backoffLimit: 0, template: { metadata: { annotations }, spec: podSpec(settings.graceSeconds, 'Never') } },
      },
    });
  } else if (name !== 'dirty-record') {
    for (let index = 0; index < victims; index++) await createPod(`victim-${index}`);
  }
  return run;
}

const isVictim = (pod: V1Pod) => !pod.metadata!.name!.startsWith('bystander-');

/** Waits until every pod of the case runs, then records the victims' and bystanders' IPs. */
export async function waitCaseRunning(run: CaseRun, victims: number, timeoutMs: number): Promise<void> {
  const expected = run.bystanders.size + (run.name === 'dirty-record' ? 0 : victims);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = run.kubelet.listPods().filter(isRunning);
    if (running.length === expected) {
      for (const pod of running) {
        const ip = pod.status!.podIP!;
        if (isVictim(pod)) run.tracked.push({ id: pod.metadata!.name!, ip });
        else run.bystanders.set(pod.metadata!.name!, ip);
      }
      return;
    }
    if (Date.now() > deadline) throw new Error(`${run.name}: ${running.length}/${expected} pods Running after ${timeoutMs / 1000} s: ${JSON.stringify(run.kubelet.diagnose())}`);
    await sleep(500);
  }
}

async function waitUntilNotReady(core: CoreV1Api, node: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ready = (await core.readNode({ name: node })).status?.conditions?.find((condition) => condition.type === 'Ready');
    if (ready?.status !== 'True') return;
    await sleep(1000);
  }
  throw new Error(`node ${node} was still Ready ${timeoutMs / 1000} s after its power went off`);
}

/**
 * Runs the case's action (reclaimer-killed: the deletions only; the caller kills and restarts the
 * reclaimer around them) and stamps the time each tracked IP's pod disappeared.
 */
export async function triggerCase(settings: CaseSettings, run: CaseRun): Promise<void> {
  const core = settings.kubeConfig.makeApiClient(CoreV1Api);
  const { namespace } = run;
  const stamp = () => {
    run.startedAt = Date.now();
    for (const tracked of run.tracked) tracked.startedAt = run.startedAt;
  };
  const deleteVictims = async (gracePeriodSeconds?: number) => {
    for (const tracked of run.tracked) {
      await core.deleteNamespacedPod({ namespace, name: tracked.id, ...(gracePeriodSeconds === undefined ? {} : { gracePeriodSeconds }) });
      tracked.startedAt = Date.now();
    }
    run.startedAt = run.tracked[0]?.startedAt;
  };
  switch (run.name) {
    case 'del-dropped':
    case 'reclaimer-killed':
      await deleteVictims();
      break;
    case 'force-deleted':
      await deleteVictims(0);
      break;
    case 'namespace-deleted':
      await core.deleteNamespace({ name: namespace });
      stamp();
      break;
    case 'terminating-on-ready-node':
      run.kubelet.setStopsHang(true);
      await deleteVictims();
      break;
    case 'on-powered-off-node':
      run.kubelet.powerOff(run.node);
      await waitUntilNotReady(core, run.node);
      await deleteVictims();
      break;
    case 'job-succeeded':
      for (const pod of run.kubelet.listPods().filter(isVictim)) {
        await run.kubelet.completePod(pod);
        run.tracked.find((tracked) => tracked.id === pod.metadata!.name)!.startedAt = Date.now();
      }
      run.startedAt = run.tracked[0]?.startedAt;
      break;
    case 'dirty-record': {
      const ips = await settings.ipam.reclaim!.writeDirtyRecords(settings.victims, namespace);
      run.tracked.push(...ips.map((ip, index) => ({ id: `ghost-${index}`, ip })));
      stamp();
      break;
    }
  }
}

/** Puts the case's node back to normal once it is measured: power on, a runtime that stops pods again. */
export function settleCase(run: CaseRun): void {
  run.kubelet.setStopsHang(false);
  if (run.name === 'on-powered-off-node') run.kubelet.powerOn(run.node);
}

export async function tearDownCase(settings: CaseSettings, run: CaseRun): Promise<void> {
  const core = settings.kubeConfig.makeApiClient(CoreV1Api);
  await run.kubelet.stop();
  await core.deleteNamespace({ name: run.namespace }).catch(() => undefined);
  await run.kubelet.removeNodes();
}
