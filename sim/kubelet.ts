import {
  CoordinationV1Api,
  CoreV1Api,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1ContainerState,
  type V1ContainerStatus,
  type V1Pod,
  type V1PodStatus,
} from '@kubernetes/client-node';
import { EventRecorder } from '../src/k8s/events.ts';
import { restartOnError, type Watched } from '../src/k8s/watch.ts';
import { invokeCni, newContainerID, type CniOutcome } from './cni.ts';

/** A real network namespace per sandbox, for plugins that open CNI_NETNS. */
export interface SandboxNetns {
  /** Creates the sandbox's namespace and returns its path. */
  create(containerID: string): Promise<string>;
  path(containerID: string): string;
  /** Removes it once the sandbox is torn down (after its DEL, or instead of a dropped one). */
  remove(containerID: string): Promise<void>;
}

export interface SimulatedKubeletOptions {
  kubeConfig: KubeConfig;
  /** The simulated nodes; they are created (or adopted) at start. */
  nodes: readonly string[];
  /** Only this namespace's pods are bound and started. */
  namespace: string;
  cni: {
    /** The plugin binary, called once per ADD and DEL. */
    binary: string;
    /** CNI_PATH handed to the plugin. */
    cniPath: string;
    /** The network configuration a node's runtime sends on stdin. */
    netconf: (node: string) => string;
    /** Without it, CNI_NETNS names a path that does not exist. */
    sandboxNetns?: SandboxNetns;
  };
  /** How often each node renews its Lease and Ready condition (default 5 s). */
  heartbeatMs?: number;
  /** Sandbox starts and stops that one node runs at once (default 8). */
  parallelismPerNode?: number;
  /**
   * The wait before a failed sandbox start is tried again, jittered by up to half of it: kubelet's pod
   * worker back-off (default 10 s).
   */
  retryMs?: number;
  /** The source of chance for dropped DELs and killed ADDs (default Math.random); a seeded one repeats a run. */
  random?: () => number;
}

interface PodState {
  /** The running sandbox's container ID, and the IPs its ADD returned. */
  sandbox?: string;
  ips?: string[];
  /** A sandbox that died with its node; the restarted kubelet stops it (CNI DEL) before starting a new one. */
  deadSandbox?: string;
  ready: boolean;
  /** Finished (Succeeded, as a Job's pod): never started again. */
  finished?: boolean;
  /** When the running sandbox started (epoch ms). */
  readyAt?: number;
  notBefore: number;
  busy: boolean;
}

interface NodeState {
  powered: boolean;
  inflight: number;
}

export interface KubeletStats {
  adds: number;
  addFailures: number;
  dels: number;
  delFailures: number;
  droppedDels: number;
  /** ADD plugin processes killed (SIGKILL) while they ran. */
  killedAdds: number;
  /** ADD failure messages and how often each happened. */
  errors: Record<string, number>;
  /** Wall-clock milliseconds of every successful ADD. */
  addMs: number[];
  /** Failed API calls (binding, status, deletion) by message. */
  apiErrors: Record<string, number>;
  /** When each ADD failed (Date.now()), and whether a cni-kill fault killed its plugin. */
  addFailureLog: { at: number; killed: boolean }[];
}

const podKey = (pod: V1Pod) => pod.metadata!.uid!;

/** Every container of the pod in one state: running (and ready) or terminated. */
function containerStatuses(pod: V1Pod, running: boolean, state: V1ContainerState): V1ContainerStatus[] {
  return (pod.spec?.containers ?? []).map((container) => ({
    name: container.name,
    image: container.image ?? '',
    imageID: '',
    ready: running,
    restartCount: 0,
    started: running,
    state,
  }));
}

/** An ADD error without what differs from pod to pod (names, log timestamps), so that the report counts kinds. */
export function errorKind(message: string): string {
  return message
    .replace(/^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] /, '')
    .replace(/pod [\w.-]+\/[\w.-]+/g, 'pod <pod>')
    .slice(0, 300);
}

/**
 * A kubelet for many nodes in one process, against a real API server, for benchmarks and chaos runs: it
 * registers Node objects and keeps their heartbeats (Lease and Ready condition), binds unscheduled pods
 * itself (no scheduler runs), starts a bound pod by invoking the CNI plugin exactly as a runtime does (a new
 * container ID, CNI_* environment, netconf on stdin), then sets podIPs, Running and Ready; on deletion it
 * calls CNI DEL and confirms the deletion (grace 0). Faults: power a node off and on, drop a share of DELs,
 * remove the plugin binary, hang on every pod stop (pods stay Terminating on a Ready node).
 */
export class SimulatedKubelet {
  readonly stats: KubeletStats = { adds: 0, addFailures: 0, dels: 0, delFailures: 0, droppedDels: 0, killedAdds: 0, errors: {}, addMs: [], apiErrors: {}, addFailureLog: [] };
  private readonly core: CoreV1Api;
  private readonly leases: CoordinationV1Api;
  private readonly informer: Watched<V1Pod>;
  private readonly nodes = new Map<string, NodeState>();
  private readonly pods = new Map<string, PodState>();
  /** The watched pods by UID, and where this kubelet bound pods the watch has not shown bound yet. */
  private readonly byUID = new Map<string, V1Pod>();
  private readonly boundTo = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private readonly heartbeatMs: number;
  private readonly parallelism: number;
  private readonly retryMs: number;
  private binary: string;
  private dropDelShare = 0;
  private stopsHang = false;
  private killAdds = { share: 0, maxDelayMs: 0 };
  private readonly random: () => number;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private binding = 0;

  private readonly options: SimulatedKubeletOptions;
  private readonly events: EventRecorder;

  constructor(options: SimulatedKubeletOptions) {
    this.options = options;
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.events = new EventRecorder(options.kubeConfig, 'kubelet');
    this.leases = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.heartbeatMs = options.heartbeatMs ?? 5000;
    this.parallelism = options.parallelismPerNode ?? 8;
    this.retryMs = options.retryMs ?? 10_000;
    this.binary = options.cni.binary;
    this.random = options.random ?? Math.random;
    for (const node of options.nodes) this.nodes.set(node, { powered: true, inflight: 0 });
    const namespace = options.namespace;
    this.informer = makeInformer(options.kubeConfig, `/api/v1/namespaces/${namespace}/pods`, () => this.core.listNamespacedPod({ namespace }));
    const touch = (pod: V1Pod) => {
      this.byUID.set(podKey(pod), pod);
      this.dirty.add(podKey(pod));
      this.pump();
    };
    this.informer.on('add', touch);
    this.informer.on('update', touch);
    this.informer.on('delete', (pod) => {
      const key = podKey(pod);
      this.byUID.delete(key);
      this.boundTo.delete(key);
      this.pods.delete(key);
      this.dirty.delete(key);
    });
    restartOnError(this.informer, () => this.stopped, () => undefined);
  }

  async start(): Promise<void> {
    await Promise.all(this.options.nodes.map((node) => this.registerNode(node)));
    await this.informer.start();
    this.timers.push(setInterval(() => void this.heartbeatAll(), this.heartbeatMs));
    // Retries after backoff, and anything an event did not cover.
    this.timers.push(
      setInterval(() => {
        for (const key of this.byUID.keys()) this.dirty.add(key);
        this.pump();
      }, 500),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.informer.stop();
  }

  /** Deletes the simulated Node objects (their Leases go with them through the owner reference). */
  async removeNodes(): Promise<void> {
    await Promise.all(this.options.nodes.map((name) => this.core.deleteNode({ name }).catch(() => undefined)));
  }

  /** Power off: no heartbeats, no CNI calls, and the node's sandboxes die with it. */
  powerOff(node: string): void {
    const state = this.nodes.get(node);
    if (!state) throw new Error(`no simulated node ${node}`);
    state.powered = false;
    for (const pod of this.informer.list()) {
      if (pod.spec?.nodeName !== node) continue;
      const podState = this.pods.get(podKey(pod));
      if (!podState?.sandbox) continue;
      podState.deadSandbox = podState.sandbox;
      podState.sandbox = undefined;
      podState.ready = false;
    }
  }

  /** Power on: the restarted kubelet heartbeats again and re-creates its pods' sandboxes. */
  powerOn(node: string): void {
    const state = this.nodes.get(node);
    if (!state) throw new Error(`no simulated node ${node}`);
    state.powered = true;
    void this.heartbeat(node).catch(() => undefined);
    for (const pod of this.informer.list()) {
      if (pod.spec?.nodeName !== node) continue;
      const podState = this.pods.get(podKey(pod));
      if (podState) {
        podState.notBefore = 0;
      }
      this.dirty.add(podKey(pod));
    }
    this.pump();
  }

  /** Drops this share (0..1) of CNI DELs: the runtime never calls the plugin, the pod is deleted anyway. */
  setDropDelShare(share: number): void {
    this.dropDelShare = share;
  }

  /** While set, pods being deleted are never stopped: no DEL, no confirmed deletion, as with a hung runtime. */
  setStopsHang(hang: boolean): void {
    this.stopsHang = hang;
  }

  /**
   * Kills (SIGKILL) this share (0..1) of ADD plugin processes after a random time up to `maxDelayMs` while
   * they run: the runtime sees a failed ADD, tears the sandbox's network down (DEL) and tries again later.
   */
  setKillAddShare(share: number, maxDelayMs: number): void {
    this.killAdds = { share, maxDelayMs };
  }

  /** Removes the plugin binary from the runtime's view (every call fails as with a missing file), or restores it. */
  setPluginMissing(missing: boolean): void {
    this.binary = missing ? `${this.options.cni.binary}.removed` : this.options.cni.binary;
  }

  /** Whether the pod's running sandbox started at or after `epochMs` (after a power cycle, say). */
  startedSince(pod: V1Pod, epochMs: number): boolean {
    return (this.pods.get(podKey(pod))?.readyAt ?? 0) >= epochMs;
  }

  /** Where the pods stand, for a report of how far a scenario got: counts by condition, and busy nodes. */
  diagnose(): Record<string, number> {
    const counts: Record<string, number> = {};
    const add = (key: string) => void (counts[key] = (counts[key] ?? 0) + 1);
    for (const [key, pod] of this.byUID) {
      const state = this.pods.get(key);
      const node = pod.spec?.nodeName;
      add(
        [
          node ? (this.nodes.get(node)?.powered ? 'bound' : 'on-powered-off-node') : 'unbound',
          pod.metadata?.deletionTimestamp ? 'terminating' : pod.status?.phase ?? 'no-phase',
          state?.busy ? 'busy' : state?.ready ? 'started' : 'not-started',
        ].join('/'),
      );
    }
    for (const [name, node] of this.nodes) if (node.inflight > 0) counts[`inflight:${name}`] = node.inflight;
    return counts;
  }

  /** Pods of the namespace as the watch sees them. */
  listPods(): readonly V1Pod[] {
    return this.informer.list();
  }

  private async registerNode(name: string): Promise<void> {
    try {
      await this.core.createNode({
        body: {
          metadata: { name, labels: { 'kubernetes.io/hostname': name, 'tidepool.dev/simulated': 'true' } },
          spec: {},
        },
      });
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
    }
    await this.heartbeat(name);
  }

  private async heartbeatAll(): Promise<void> {
    await Promise.all(
      [...this.nodes].filter(([, state]) => state.powered).map(([name]) => this.heartbeat(name).catch(() => undefined)),
    );
  }

  private async heartbeat(name: string): Promise<void> {
    const now = new Date();
    await this.core.patchNodeStatus(
      {
        name,
        body: {
          status: {
            capacity: { pods: '5000', cpu: '64', memory: '256Gi' },
            allocatable: { pods: '5000', cpu: '64', memory: '256Gi' },
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'simulated kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // renewTime is a MicroTime: six fractional digits, which the typed serializer does not write.
    const renewTime = now.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    const patch = { spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime } };
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    try {
      await this.leases.patchNamespacedLease({ name, namespace: 'kube-node-lease', body: patch }, merge);
    } catch (error) {
      if ((error as { code?: number }).code !== 404) throw error;
      const node = await this.core.readNode({ name });
      await this.leases.createNamespacedLease({
        namespace: 'kube-node-lease',
        body: { metadata: { name, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata!.uid! }] }, spec: {} },
      });
      await this.leases.patchNamespacedLease({ name, namespace: 'kube-node-lease', body: patch }, merge);
    }
  }

  private pump(): void {
    if (this.stopped) return;
    // Stopping pods first: their IPs are what the starting pods wait for.
    const keys = [...this.dirty].sort((a, b) => Number(Boolean(this.byUID.get(b)?.metadata?.deletionTimestamp)) - Number(Boolean(this.byUID.get(a)?.metadata?.deletionTimestamp)));
    for (const key of keys) {
      const pod = this.byUID.get(key);
      if (!pod) {
        this.dirty.delete(key);
        continue;
      }
      const state = this.stateOf(key);
      if (state.busy) continue;
      const node = pod.spec?.nodeName;
      if (!node) {
        // Bound already, the watch has not shown it yet; or deleted (the API server removes unbound pods at once).
        if (this.boundTo.has(key) || pod.metadata?.deletionTimestamp || this.binding >= 32) continue;
        this.dirty.delete(key);
        this.track(state, undefined, () => this.bind(pod));
        continue;
      }
      const nodeState = this.nodes.get(node);
      if (!nodeState) {
        this.dirty.delete(key);
        continue;
      }
      if (!nodeState.powered || nodeState.inflight >= this.parallelism) continue;
      if (pod.metadata?.deletionTimestamp) {
        this.dirty.delete(key);
        if (!this.stopsHang) this.track(state, nodeState, () => this.stopPod(pod, state));
      } else if (state.finished) {
        this.dirty.delete(key);
      } else if (!state.ready && Date.now() >= state.notBefore) {
        this.dirty.delete(key);
        this.track(state, nodeState, () => this.startPod(pod, state, node));
      } else if (state.ready) {
        this.dirty.delete(key);
      }
    }
  }

  private stateOf(key: string): PodState {
    let state = this.pods.get(key);
    if (!state) {
      state = { ready: false, notBefore: 0, busy: false };
      this.pods.set(key, state);
    }
    return state;
  }

  private track(state: PodState, node: NodeState | undefined, work: () => Promise<void>): void {
    state.busy = true;
    if (node) node.inflight++;
    else this.binding++;
    void work()
      .catch((error: unknown) => {
        const message = ((error as { body?: string }).body ?? (error as Error).message ?? String(error)).slice(0, 300);
        this.stats.apiErrors[message] = (this.stats.apiErrors[message] ?? 0) + 1;
      })
      .finally(() => {
        state.busy = false;
        if (node) node.inflight--;
        else this.binding--;
        this.pump();
      });
  }

  /** The scheduler's job: the powered node with the fewest live pods. */
  private async bind(pod: V1Pod): Promise<void> {
    const counts = new Map([...this.nodes].filter(([, state]) => state.powered).map(([name]) => [name, 0]));
    if (counts.size === 0) return;
    for (const [key, other] of this.byUID) {
      const node = other.spec?.nodeName ?? this.boundTo.get(key);
      if (node && counts.has(node) && !other.metadata?.deletionTimestamp) counts.set(node, counts.get(node)! + 1);
    }
    const target = [...counts].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]![0];
    const { namespace, name } = pod.metadata as { namespace: string; name: string };
    this.boundTo.set(podKey(pod), target);
    try {
      await this.core.createNamespacedPodBinding({ namespace, name, body: { metadata: { name }, target: { kind: 'Node', name: target } } });
    } catch (error) {
      this.boundTo.delete(podKey(pod));
      throw error;
    }
  }

  /** The Warning Event a real kubelet writes when the runtime could not set up the sandbox's network. */
  private async recordSandboxFailure(pod: V1Pod, node: string, error: string): Promise<void> {
    let pluginType = 'unknown';
    try {
      pluginType = String((JSON.parse(this.options.cni.netconf(node)) as { type?: unknown }).type ?? pluginType);
    } catch {
      // a netconf the plugin refused is reported by the plugin's own error
    }
    const regarding = { apiVersion: 'v1', kind: 'Pod', namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
    const note = `Failed to create pod sandbox: failed to setup network for sandbox: plugin type="${pluginType}" failed (add): ${error}`;
    await this.events.tryRecord({ regarding, type: 'Warning', reason: 'FailedCreatePodSandBox', action: 'CreatePodSandbox', note }, () => {});
  }

  private async cni(command: 'ADD' | 'DEL', pod: V1Pod, containerID: string, node: string): Promise<CniOutcome & { killed: boolean }> {
    const { namespace, name, uid } = pod.metadata as { namespace: string; name: string; uid: string };
    const sandboxNetns = this.options.cni.sandboxNetns;
    const netns = sandboxNetns && (command === 'ADD' ? await sandboxNetns.create(containerID) : sandboxNetns.path(containerID));
    const call = { command, containerID, pod: { namespace, name, uid }, netconf: this.options.cni.netconf(node), ...(netns ? { netns } : {}) };
    const { share, maxDelayMs } = this.killAdds;
    const kill = command === 'ADD' && share > 0 && this.random() < share ? this.random() * maxDelayMs : undefined;
    let killed = false;
    const outcome = await invokeCni(this.binary, this.options.cni.cniPath, call, undefined, (child) => {
      if (kill === undefined) return;
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) {
          this.stats.killedAdds++;
          killed = true;
        }
      }, kill);
      child.once('exit', () => clearTimeout(timer));
    });
    if (command === 'DEL') await sandboxNetns?.remove(containerID);
    return { ...outcome, killed };
  }

  private async del(pod: V1Pod, containerID: string, node: string): Promise<void> {
    if (this.dropDelShare > 0 && this.random() < this.dropDelShare) {
      this.stats.droppedDels++;
      await this.options.cni.sandboxNetns?.remove(containerID);
      return;
    }
    const outcome = await this.cni('DEL', pod, containerID, node);
    this.stats.dels++;
    if (!outcome.ok) this.stats.delFailures++;
  }

  private async startPod(pod: V1Pod, state: PodState, node: string): Promise<void> {
    if (state.deadSandbox) {
      // The restarted kubelet reports the pod not ready (its sandbox died), then stops that sandbox before it
      // creates a new one: until then the status still shows the IP the DEL gives back.
      const now = new Date();
      const conditions = Object.entries({ PodScheduled: 'True', Initialized: 'True', ContainersReady: 'False', Ready: 'False' });
      await this.patchStatus(pod, { conditions: conditions.map(([type, status]) => ({ type, status, lastTransitionTime: now })) });
      await this.del(pod, state.deadSandbox, node);
      state.deadSandbox = undefined;
    }
    if (!state.sandbox) {
      const containerID = newContainerID();
      const outcome = await this.cni('ADD', pod, containerID, node);
      if (!this.nodes.get(node)!.powered) {
        // Power went while the plugin ran: the sandbox died with the node, and the restarted kubelet stops it.
        if (outcome.ok) state.deadSandbox = containerID;
        return;
      }
      if (!outcome.ok) {
        this.stats.addFailures++;
        this.stats.addFailureLog.push({ at: Date.now(), killed: outcome.killed });
        const message = errorKind(outcome.error ?? 'unknown error');
        this.stats.errors[message] = (this.stats.errors[message] ?? 0) + 1;
        await this.recordSandboxFailure(pod, node, outcome.error ?? 'unknown error');
        // As containerd does after a failed setup: tear the sandbox's network down.
        await this.cni('DEL', pod, containerID, node);
        state.notBefore = Date.now() + this.retryMs * (1 + this.random() / 2);
        return;
      }
      this.stats.adds++;
      this.stats.addMs.push(outcome.ms);
      state.sandbox = containerID;
      state.ips = outcome.ips;
    }
    // A sandbox whose status write failed is not started again: only the status is retried.
    const ips = state.ips ?? [];
    const now = new Date();
    const conditions = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: now }));
    await this.patchStatus(pod, {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: ips[0],
      podIPs: ips.map((ip) => ({ ip })),
      startTime: pod.status?.startTime ?? now,
      conditions,
      containerStatuses: containerStatuses(pod, true, { running: { startedAt: now } }),
    });
    state.ready = true;
    state.readyAt = Date.now();
  }

  /**
   * The pod's containers exit with success, as a Job's do: phase Succeeded, then the sandbox is torn down (a
   * DEL, which the drop share applies to). The pod is never started again.
   */
  async completePod(pod: V1Pod): Promise<void> {
    const state = this.pods.get(podKey(pod));
    if (!state?.sandbox) throw new Error(`pod ${pod.metadata?.name} has no running sandbox`);
    state.finished = true;
    const now = new Date();
    const conditions = Object.entries({ PodScheduled: 'True', Initialized: 'True', ContainersReady: 'False', Ready: 'False' });
    await this.patchStatus(pod, {
      phase: 'Succeeded',
      conditions: conditions.map(([type, status]) => ({ type, status, lastTransitionTime: now })),
      containerStatuses: containerStatuses(pod, false, { terminated: { exitCode: 0, reason: 'Completed', startedAt: new Date(state.readyAt ?? now), finishedAt: now } }),
    });
    const sandbox = state.sandbox;
    state.sandbox = undefined;
    state.ready = false;
    await this.del(pod, sandbox, pod.spec!.nodeName!);
  }

  private async patchStatus(pod: V1Pod, status: V1PodStatus): Promise<void> {
    const { namespace, name } = pod.metadata as { namespace: string; name: string };
    await this.core.patchNamespacedPodStatus({ namespace, name, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }

  private async stopPod(pod: V1Pod, state: PodState): Promise<void> {
    const node = pod.spec!.nodeName!;
    for (const containerID of [state.sandbox, state.deadSandbox]) {
      if (containerID) await this.del(pod, containerID, node);
    }
    state.sandbox = undefined;
    state.deadSandbox = undefined;
    state.ready = false;
    const { namespace, name, uid } = pod.metadata as { namespace: string; name: string; uid: string };
    try {
      // With a body, the API server reads the options from it alone: grace 0 goes there, not in the query.
      await this.core.deleteNamespacedPod({ namespace, name, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code !== 404 && code !== 409) throw error;
    }
  }
}
