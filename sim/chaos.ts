import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { formatIP, parseSubnet } from '../src/ipam/ip.ts';
import { TidepoolClient } from '../src/k8s/client.ts';
import { TidepoolIPs, TidepoolPod, TidepoolPodUID, TidepoolState } from '../src/temporal/names.ts';
import { planFaults, seededRandom, type FaultKind, type PlannedFault } from './faults.ts';
import { finalViolations, SampledInvariants, type FinalFacts, type PodFact, type RecordFact, type Violation } from './invariants.ts';
import { SimulatedKubelet, type KubeletStats } from './kubelet.ts';
import { startComponent, status, stopComponent } from '../stack/stack.ts';
import { isRunning } from './scenarios.ts';

/** The stack's processes a chaos run kills and restarts. */
export type ChaosProcess = 'tidepool-worker' | 'temporal' | 'kube-apiserver';

export interface ChaosProcessControl {
  stop: (name: ChaosProcess, signal: 'SIGTERM' | 'SIGKILL') => Promise<unknown>;
  /** Starts the process again and resolves once it is ready. */
  start: (name: ChaosProcess) => Promise<void>;
  /** The running process's id, to tell whether the worker and the agent outlived a restart of what they depend on. */
  pid: (name: 'tidepool-worker' | 'tidepool-agent') => number | undefined;
}

export interface ChaosOptions {
  kubeConfig: KubeConfig;
  temporal: { address: string; namespace: string };
  cni: { binary: string; agentSocket: string; spoolDir: string };
  processes: ChaosProcessControl;
  durationMs: number;
  /** Pods created per second; once `pods` live, as many deleted. */
  rate: number;
  /** The steady population of live pods. */
  pods: number;
  nodes: number;
  poolSize: number;
  seed: number;
  faults: readonly FaultKind[];
  meanFaultGapMs: number;
  powerOffMs: number;
  /** How long a window of dropped DELs or killed ADDs lasts, and the share of DELs dropped or ADDs killed in it. */
  faultWindowMs: number;
  dropDelShare: number;
  killAddShare: number;
  sampleMs: number;
  /** How long a record may outlive its pod during the run before it counts as leaked. */
  reclaimWindowMs: number;
  /** How long the end state may take to satisfy every invariant once churn and faults have stopped. */
  settleMs: number;
  log: (line: string) => void;
}

export interface InjectedFault extends PlannedFault {
  /** Seconds since the run's start when it began and when it was over (the process ready again). */
  startedS: number;
  endedS?: number;
  error?: string;
  /** For a Temporal or kube-apiserver restart: whether the worker and the agent ran on through it (same process). */
  survived?: { worker: boolean; agent: boolean };
}

export interface ChaosResult {
  seed: number;
  durationS: number;
  pool: string;
  namespace: string;
  podsCreated: number;
  podsDeleted: number;
  /** Pod creations and deletions the API server refused or could not take (it was down, say); retried later. */
  churnErrors: number;
  faultsByKind: Record<string, number>;
  faults: InjectedFault[];
  samples: number;
  /** Samples that could not be read (kube-apiserver down). */
  failedSamples: number;
  violations: Violation[];
  converged: boolean;
  /** Seconds from the end of the last fault, and from the end of churn, to an end state that met every invariant. */
  convergeAfterLastFaultS?: number;
  convergeAfterChurnS?: number;
  finalPods: number;
  finalRecords: number;
  kubelet: Omit<KubeletStats, 'addMs' | 'errors' | 'apiErrors'> & { addErrors: Record<string, number> };
}

const POOL_ANNOTATION = 'ipam.tidepool.dev/ippool';

/**
 * The worker's reclaim settings for a chaos run (docs/reclaim.md): sweeps every 10 s (the shortest allowed)
 * and a minimum record age of 5 s, so that a leak is caught within seconds rather than minutes.
 */
export const CHAOS_WORKER_ENV: Record<string, string> = {
  TIDEPOOL_GC_SWEEP_INTERVAL: '10s',
  TIDEPOOL_GC_MIN_RECORD_AGE: '5s',
  TIDEPOOL_GC_ADDITIONAL_GRACE_DELAY: '0s',
};

/** The local stack's processes, stopped and started through its pid files; the worker with CHAOS_WORKER_ENV. */
export function stackProcessControl(log: (line: string) => void): ChaosProcessControl {
  return {
    stop: (name, signal) => stopComponent(name, signal),
    start: (name) => startComponent(name, undefined, (line) => log(`[stack] ${line}`), { workerEnv: CHAOS_WORKER_ENV }),
    pid: (name) => status().find((component) => component.name === name)?.pid,
  };
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

/**
 * Steady churn on simulated nodes under injected faults, with the invariants sampled throughout and checked
 * in full once churn and faults have stopped. Creates its own namespace, nodes and pool, and removes them.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const { kubeConfig, log } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const pools = new TidepoolClient(kubeConfig);
  const tag = randomBytes(3).toString('hex');
  const namespace = `chaos-${tag}`;
  const pool = `chaos-${tag}`;
  const nodes = Array.from({ length: options.nodes }, (_, index) => `chaos-${tag}-${index}`);
  const planRandom = seededRandom(options.seed);
  const churnRandom = seededRandom(options.seed + 1);
  const plan = planFaults(
    {
      durationMs: options.durationMs,
      kinds: options.faults,
      meanGapMs: options.meanFaultGapMs,
      quietStartMs: Math.min(30_000, options.durationMs / 6),
      quietEndMs: Math.min(30_000, options.durationMs / 10),
      nodes,
      powerOffMs: options.powerOffMs,
      windowMs: options.faultWindowMs,
    },
    planRandom,
  );
  log(`plan: ${plan.map((fault) => `${fault.kind}${fault.node ? `(${fault.node})` : ''}@${Math.round(fault.atMs / 1000)}s`).join(', ') || 'no faults'}`);

  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await waitForDefaultServiceAccount(core, namespace);
  const subnet = parseSubnet('10.250.0.0/16');
  const range = [1n, BigInt(options.poolSize)].map((offset) => formatIP(subnet.family, subnet.first + offset));
  await pools.createPool(pool, { subnet: '10.250.0.0/16', ips: [range.join('-')] });
  const netconf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'underlay',
    type: 'macvlan',
    ipam: { type: 'tidepool', agent_socket: options.cni.agentSocket, spool_dir: options.cni.spoolDir },
  });
  const kubelet = new SimulatedKubelet({
    kubeConfig,
    nodes,
    namespace,
    cni: { binary: options.cni.binary, cniPath: '/opt/cni/bin', netconf: () => netconf },
    retryMs: 2000,
    random: seededRandom(options.seed + 2),
  });
  await kubelet.start();

  const started = Date.now();
  const seconds = (at: number) => Math.round((at - started) / 100) / 10;
  const violations: Violation[] = [];
  const sampled = new SampledInvariants(options.reclaimWindowMs);
  let samples = 0;
  let failedSamples = 0;
  let podsCreated = 0;
  let podsDeleted = 0;
  let churnErrors = 0;
  let sequence = 0;
  const live: string[] = [];
  const injected: InjectedFault[] = [];
  let processFaults: Promise<void> = Promise.resolve();
  let running = true;

  const churn = async () => {
    const tickMs = 1000 / options.rate;
    for (let next = Date.now(); running; next += tickMs) {
      await sleep(Math.max(0, next - Date.now()));
      if (!running) break;
      if (live.length >= options.pods) {
        const index = Math.floor(churnRandom() * live.length);
        const name = live[index]!;
        try {
          await core.deleteNamespacedPod({ namespace, name });
          live.splice(index, 1);
          podsDeleted++;
        } catch (error) {
          if ((error as { code?: number }).code === 404) live.splice(index, 1);
          churnErrors++;
          continue;
        }
      }
      const name = `churn-${sequence++}`;
      try {
        await core.createNamespacedPod({
          namespace,
          body: {
            metadata: { name, labels: { app: 'chaos' }, annotations: { [POOL_ANNOTATION]: JSON.stringify({ ipv4: [pool] }) } },
            spec: { containers: [{ name: 'app', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: 5 },
          },
        });
        live.push(name);
        podsCreated++;
      } catch {
        churnErrors++;
      }
    }
  };

  const readRecords = async (): Promise<{ records: RecordFact[]; count?: number }> => {
    const status = (await pools.getPool(pool))?.status;
    const records = Object.entries(status?.allocatedIPs ?? {}).map(([ip, record]) => ({ pool, ip, pod: record.pod, podUID: record.podUID }));
    return { records, ...(status?.allocatedIPCount !== undefined ? { count: status.allocatedIPCount } : {}) };
  };
  const readPods = async () => (await core.listNamespacedPod({ namespace })).items.map(podFact);

  const sampler = async () => {
    while (running) {
      try {
        // Pools first: every record then names a pod that the later pod list has seen (or seen gone).
        const { records } = await readRecords();
        const pods = await readPods();
        const found = sampled.observe(records, pods, Date.now());
        for (const violation of found) log(`VIOLATION ${violation.invariant} at ${seconds(violation.at)} s: ${violation.detail}`);
        violations.push(...found);
        samples++;
      } catch {
        failedSamples++;
      }
      await sleep(options.sampleMs);
    }
  };

  const inject = async (fault: PlannedFault): Promise<void> => {
    const record: InjectedFault = { ...fault, startedS: seconds(Date.now()) };
    injected.push(record);
    log(`fault ${fault.kind}${fault.node ? ` ${fault.node}` : ''} at ${record.startedS} s`);
    try {
      switch (fault.kind) {
        case 'worker-kill':
          await options.processes.stop('tidepool-worker', 'SIGKILL');
          await sleep(fault.forMs);
          await startAgain('tidepool-worker');
          break;
        case 'temporal-restart':
        case 'apiserver-restart': {
          const name = fault.kind === 'temporal-restart' ? 'temporal' : 'kube-apiserver';
          const before = { worker: options.processes.pid('tidepool-worker'), agent: options.processes.pid('tidepool-agent') };
          await options.processes.stop(name, 'SIGTERM');
          await startAgain(name);
          record.survived = {
            worker: before.worker !== undefined && options.processes.pid('tidepool-worker') === before.worker,
            agent: before.agent !== undefined && options.processes.pid('tidepool-agent') === before.agent,
          };
          break;
        }
        case 'drop-dels':
          kubelet.setDropDelShare(options.dropDelShare);
          await sleep(fault.forMs);
          kubelet.setDropDelShare(0);
          break;
        case 'cni-kill':
          kubelet.setKillAddShare(options.killAddShare, 1500);
          await sleep(fault.forMs);
          kubelet.setKillAddShare(0, 0);
          break;
        case 'node-power':
          kubelet.powerOff(fault.node!);
          await sleep(fault.forMs);
          kubelet.powerOn(fault.node!);
          break;
      }
    } catch (error) {
      record.error = (error as Error).message.split('\n')[0];
      log(`fault ${fault.kind} failed: ${record.error}`);
    }
    record.endedS = seconds(Date.now());
    log(`fault ${fault.kind} over at ${record.endedS} s`);
  };

  /** As a Deployment or systemd would: start the process again until it is ready. */
  const startAgain = async (name: ChaosProcess) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.processes.start(name);
        return;
      } catch (error) {
        if (attempt >= 5) throw error;
        log(`${name} did not come back (${(error as Error).message.split('\n')[0]}); starting it again`);
        await options.processes.stop(name, 'SIGKILL').catch(() => undefined);
      }
    }
  };

  const faultTasks = plan.map(async (fault) => {
    await sleep(Math.max(0, started + fault.atMs - Date.now()));
    if (fault.kind === 'worker-kill' || fault.kind === 'temporal-restart' || fault.kind === 'apiserver-restart') {
      // One process fault at a time: the next one begins once the last process is back.
      const turn = processFaults.then(() => inject(fault));
      processFaults = turn;
      await turn;
    } else {
      await inject(fault);
    }
  });

  const progress = setInterval(() => {
    log(`${seconds(Date.now())} s: ${podsCreated} created, ${podsDeleted} deleted, ${live.length} live, ${injected.length}/${plan.length} faults, ${violations.length} violations, kubelet ${JSON.stringify(kubelet.diagnose())}`);
  }, 30_000);
  const churning = churn();
  const sampling = sampler();
  let converged = false;
  let convergedAt: number | undefined;
  let finalFacts: FinalFacts | undefined;
  let churnEnded: number | undefined;
  try {
    await sleep(options.durationMs);
    running = false;
    await churning;
    churnEnded = Date.now();
    await Promise.all(faultTasks);
    await sampling;
    log(`churn stopped at ${seconds(Date.now())} s, last fault over at ${Math.max(0, ...injected.map((f) => f.endedS ?? 0))} s; waiting for the end state`);

    const deadline = Date.now() + options.settleMs;
    let lastViolations: Violation[] = [];
    for (;;) {
      try {
        finalFacts = await readFinalFacts();
        lastViolations = finalViolations(finalFacts, Date.now());
        if (lastViolations.length === 0) {
          converged = true;
          convergedAt = Date.now();
          break;
        }
      } catch (error) {
        lastViolations = [];
        log(`end state not readable: ${(error as Error).message.split('\n')[0]}`);
      }
      if (Date.now() > deadline) break;
      await sleep(2000);
    }
    if (!converged) {
      for (const violation of lastViolations) log(`VIOLATION (end state) ${violation.invariant}: ${violation.detail}`);
      violations.push(...lastViolations);
    }
  } finally {
    running = false;
    clearInterval(progress);
    await cleanup().catch((error: unknown) => log(`cleanup: ${(error as Error).message}`));
  }

  const lastFaultEnd = started + 1000 * Math.max(0, ...injected.map((fault) => fault.endedS ?? 0));
  const { adds, addFailures, dels, delFailures, droppedDels, killedAdds, errors } = kubelet.stats;
  const faultsByKind: Record<string, number> = Object.fromEntries(options.faults.map((kind) => [kind, 0]));
  for (const fault of injected) faultsByKind[fault.kind] = (faultsByKind[fault.kind] ?? 0) + 1;
  return {
    seed: options.seed,
    durationS: options.durationMs / 1000,
    pool,
    namespace,
    podsCreated,
    podsDeleted,
    churnErrors,
    faultsByKind,
    faults: injected,
    samples,
    failedSamples,
    violations,
    converged,
    ...(convergedAt !== undefined
      ? { convergeAfterLastFaultS: Math.round((convergedAt - lastFaultEnd) / 100) / 10, convergeAfterChurnS: Math.round((convergedAt - (churnEnded ?? convergedAt)) / 100) / 10 }
      : {}),
    finalPods: finalFacts?.pods.filter((pod) => !pod.gone).length ?? 0,
    finalRecords: finalFacts?.records.length ?? 0,
    kubelet: { adds, addFailures, dels, delFailures, droppedDels, killedAdds, addErrors: errors },
  };

  async function readFinalFacts(): Promise<FinalFacts> {
    const { records, count } = await readRecords();
    const pods = await readPods();
    const endpoints = (await pools.listPodEndpoints(namespace)).map((endpoint) => ({
      pod: `${endpoint.metadata.namespace}/${endpoint.metadata.name}`,
      podUID: endpoint.status.podUID,
      ips: endpoint.status.ips.map((ip) => ip.address.split('/')[0]!),
    }));
    const connection = await Connection.connect({ address: options.temporal.address, connectTimeout: 5000 });
    try {
      const client = new Client({ connection, namespace: options.temporal.namespace });
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

  /** Deletes the pods (the kubelet stops them, so the pool empties), then the namespace, pool and nodes. */
  async function cleanup(): Promise<void> {
    await core.deleteCollectionNamespacedPod({ namespace }).catch(() => undefined);
    const until = Date.now() + 120_000;
    while (Date.now() < until) {
      const left = await readRecords().then((r) => r.records.length, () => -1);
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
