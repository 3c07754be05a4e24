import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { SimulatedKubelet, type SandboxNetns } from './kubelet.ts';

export const SCENARIOS = ['create', 'rebuild', 'recovery', 'delete'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** One IPAM as the runtime sees it: a plugin, its configuration per node, and what it records. */
export interface IpamUnderTest {
  name: string;
  binary: string;
  cniPath: string;
  netconf: (node: string) => string;
  /** A real network namespace per sandbox, for a plugin that opens CNI_NETNS. */
  sandboxNetns?: SandboxNetns;
  /** Pod template annotations (the IPAM's pool annotation). */
  podAnnotations?: Record<string, string>;
  /** The IPs the IPAM records as allocated, with the holder where it knows it; for the leak check. */
  allocatedIPs: () => Promise<string[]>;
}

export interface Audit {
  /** IPs held by more than one live pod. */
  duplicates: string[];
  /** IPs the IPAM records that no live pod has. */
  leaked: string[];
  /** Live pods without Running and Ready with an IP. */
  notRunning: number;
}

export interface ScenarioResult {
  scenario: Scenario;
  ok: boolean;
  /** Seconds from the action to the end condition, or to the deadline. */
  seconds: number;
  /** How far it got: e.g. `1000/1000 Running`, or why it failed. */
  progress: string;
  /** Running pods over time (pods left, for delete): [seconds since the action, count]. */
  timeline: [number, number][];
  audit?: Audit;
  /** Failed CNI ADDs during the scenario, and the most frequent kinds of error. */
  addFailures: number;
  errors: Record<string, number>;
}

export interface ClusterRunOptions {
  kubeConfig: KubeConfig;
  ipam: IpamUnderTest;
  namespace: string;
  nodes: readonly string[];
  pods: number;
  scenarios: readonly Scenario[];
  deadlineMs: number;
  /** How long nodes stay powered off in the recovery scenario: past the node-monitor grace period, so they go NotReady. */
  powerOffMs?: number;
  parallelismPerNode?: number;
  onProgress?: (scenario: Scenario, line: string) => void;
  /** Called as each scenario's timed part starts and ends (a benchmark samples CPU and counters there); awaited, outside the timing. */
  onTimed?: (scenario: Scenario, phase: 'start' | 'end') => void | Promise<void>;
}

const DEPLOYMENT = 'bench-app';

export function isRunning(pod: V1Pod): boolean {
  return (
    !pod.metadata?.deletionTimestamp &&
    pod.status?.phase === 'Running' &&
    Boolean(pod.status.podIP) &&
    (pod.status.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True')
  );
}

/** Compares the live pods' IPs with what the IPAM records. */
export async function audit(kubelet: SimulatedKubelet, ipam: IpamUnderTest): Promise<Audit> {
  const live = kubelet.listPods().filter((pod) => !pod.metadata?.deletionTimestamp);
  const holders = new Map<string, number>();
  for (const pod of live) {
    for (const ip of pod.status?.podIPs ?? []) holders.set(ip.ip, (holders.get(ip.ip) ?? 0) + 1);
  }
  const recorded = await ipam.allocatedIPs();
  return {
    duplicates: [...holders].filter(([, count]) => count > 1).map(([ip]) => ip),
    leaked: recorded.filter((ip) => !holders.has(ip)),
    notRunning: live.filter((pod) => !isRunning(pod)).length,
  };
}

/**
 * Seed 001's test on the local stack: a Deployment of N replicas on N IPs, on simulated nodes. create: until
 * all N run; rebuild: every pod deleted at once, until N replacements run; recovery: every node powered off
 * (until the node controller marks them NotReady) and on, until all run again; delete: the Deployment
 * deleted, until every pod is gone and the IPAM holds no IP. Each scenario has a deadline; one that misses it
 * reports how far it got, and the later ones are not run.
 */
export async function runClusterScenarios(options: ClusterRunOptions): Promise<{ results: ScenarioResult[]; kubelet: SimulatedKubelet }> {
  const { kubeConfig, ipam, namespace, pods } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const kubelet = new SimulatedKubelet({
    kubeConfig,
    nodes: options.nodes,
    namespace,
    cni: { binary: ipam.binary, cniPath: ipam.cniPath, netconf: ipam.netconf, sandboxNetns: ipam.sandboxNetns },
    ...(options.parallelismPerNode ? { parallelismPerNode: options.parallelismPerNode } : {}),
  });
  await kubelet.start();
  const results: ScenarioResult[] = [];
  try {
    for (const scenario of options.scenarios) {
      const result = await runOne(scenario);
      results.push(result);
      if (!result.ok) break;
    }
  } finally {
    await kubelet.stop();
  }
  return { results, kubelet };

  async function runOne(scenario: Scenario): Promise<ScenarioResult> {
    const errorsBefore = { ...kubelet.stats.errors };
    const failuresBefore = kubelet.stats.addFailures;
    const previous = new Set(kubelet.listPods().map((pod) => pod.metadata!.uid!));
    await options.onTimed?.(scenario, 'start');
    let started = performance.now();
    let goal: () => Promise<{ done: boolean; count: number; progress: string }>;
    const running = (fresh: boolean) => kubelet.listPods().filter((pod) => isRunning(pod) && (!fresh || !previous.has(pod.metadata!.uid!))).length;
    const runningGoal = (fresh: boolean) => async () => {
      const count = running(fresh);
      return { done: count === pods, count, progress: `${count}/${pods} Running` };
    };

    switch (scenario) {
      case 'create':
        await apps.createNamespacedDeployment({
          namespace,
          body: {
            metadata: { name: DEPLOYMENT },
            spec: {
              replicas: pods,
              selector: { matchLabels: { app: DEPLOYMENT } },
              template: {
                metadata: { labels: { app: DEPLOYMENT }, annotations: ipam.podAnnotations ?? {} },
                spec: { containers: [{ name: 'app', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: 30 },
              },
            },
          },
        });
        goal = runningGoal(false);
        break;
      case 'rebuild': {
        // As `kubectl delete pod -l app=...`: every pod at once, each by its own DELETE. One DeleteCollection
        // of 1000 pods can outlast the request (the API server deletes them one after another).
        const victims = (await core.listNamespacedPod({ namespace, labelSelector: `app=${DEPLOYMENT}` })).items;
        await forEachConcurrently(victims, 16, (pod) => core.deleteNamespacedPod({ namespace, name: pod.metadata!.name! }).then(() => undefined));
        goal = runningGoal(true);
        break;
      }
      case 'recovery': {
        for (const node of options.nodes) kubelet.powerOff(node);
        const offUntil = Date.now() + (options.powerOffMs ?? 45_000);
        options.onProgress?.(scenario, `nodes powered off; on again in ${Math.round((offUntil - Date.now()) / 1000)} s`);
        await waitUntilNotReady(core, options.nodes, offUntil);
        await sleep(Math.max(0, offUntil - Date.now()));
        await options.onTimed?.(scenario, 'start');
        started = performance.now();
        const poweredOnAt = Date.now();
        for (const node of options.nodes) kubelet.powerOn(node);
        goal = async () => {
          // Running again means a sandbox started after power-on, so the Ready condition our kubelet set anew.
          const count = kubelet.listPods().filter((pod) => isRunning(pod) && kubelet.startedSince(pod, poweredOnAt)).length;
          return { done: count === pods, count, progress: `${count}/${pods} Running` };
        };
        break;
      }
      case 'delete':
        await apps.deleteNamespacedDeployment({ namespace, name: DEPLOYMENT, propagationPolicy: 'Background' });
        goal = async () => {
          const left = kubelet.listPods().length;
          const held = (await ipam.allocatedIPs()).length;
          return { done: left === 0 && held === 0, count: left, progress: `${left} pods left, ${held} IPs held` };
        };
        break;
    }

    const timeline: [number, number][] = [];
    const deadline = started + options.deadlineMs;
    let last: Awaited<ReturnType<typeof goal>>;
    for (;;) {
      last = await goal();
      const seconds = (performance.now() - started) / 1000;
      timeline.push([Math.round(seconds * 10) / 10, last.count]);
      options.onProgress?.(scenario, `${last.progress} ${seconds.toFixed(0)} s`);
      if (last.done || performance.now() > deadline) break;
      await sleep(1000);
    }
    const seconds = (performance.now() - started) / 1000;
    await options.onTimed?.(scenario, 'end');
    const errors = Object.fromEntries(
      Object.entries(kubelet.stats.errors)
        .map(([message, count]) => [message, count - (errorsBefore[message] ?? 0)] as const)
        .filter(([, count]) => count > 0)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5),
    );
    const result: ScenarioResult = {
      scenario,
      ok: last.done,
      seconds: Math.round(seconds * 10) / 10,
      progress: last.done
        ? last.progress
        : `failed at ${last.progress} after ${Math.round(seconds)} s (deadline); watched pods: ${JSON.stringify(kubelet.diagnose())}, pods in the API: ${(await core.listNamespacedPod({ namespace })).items.length}`,
      timeline,
      addFailures: kubelet.stats.addFailures - failuresBefore,
      errors,
    };
    // Also after a failure: the IPs an IPAM still records for pods that are gone are often why it failed.
    result.audit = await audit(kubelet, ipam);
    return result;
  }
}

async function forEachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

async function waitUntilNotReady(core: CoreV1Api, nodes: readonly string[], until: number): Promise<void> {
  const wanted = new Set(nodes);
  while (Date.now() < until) {
    const list = await core.listNode();
    const notReady = list.items.filter(
      (node) => wanted.has(node.metadata!.name!) && node.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True',
    ).length;
    if (notReady === wanted.size) return;
    await sleep(1000);
  }
}
