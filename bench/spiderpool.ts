import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1MutatingWebhookConfiguration,
  type V1ValidatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { applyManifests, readManifests, waitForCrdsEstablished } from '../src/k8s/apply.ts';
import type { SandboxNetns } from '../sim/kubelet.ts';
import { stackPaths } from '../stack/config.ts';
import type { IpamContext, PreparedIpam } from './ipams.ts';
import { hostRange, ipsInRange, updateWithRetry } from './pool-ranges.ts';

const GROUP = 'spiderpool.spidernet.io';
const VERSION = 'v2beta1';
const POOLS = { group: GROUP, version: VERSION, plural: 'spiderippools' };
const ENDPOINTS = { group: GROUP, version: VERSION, plural: 'spiderendpoints' };
const BINARIES = ['spiderpool', 'spiderpool-agent', 'spiderpool-controller'] as const;
const SUBNET = '10.243.0.0/16';
const execFileAsync = promisify(execFile);

export interface SpiderpoolOptions {
  /** The first of consecutive 127.0.0.1 ports: the controller's health port, its webhook, then one per agent. Default: free ports the kernel picks. */
  portBase?: number;
  /** SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION, the controller's periodic scan; unset: Spiderpool's default (600 s). */
  gcIntervalSeconds?: number;
}

/** Why Spiderpool cannot run here (its build is not in the peers cache), or undefined. */
export function spiderpoolMissing(peersDir: string): string | undefined {
  const needed = [...BINARIES.map((name) => path.join(peersDir, 'bin', name)), path.join(peersDir, 'spiderpool-crds')];
  const missing = needed.filter((file) => !existsSync(file));
  if (missing.length === 0) return undefined;
  return `not built (${missing.join(', ')} missing); stack/build-peers.sh builds it from ../shared/peers/spiderpool-v1.2.2.tar.gz beside the repository when that file exists`;
}

interface SpiderIPPool {
  metadata: { name: string; resourceVersion?: string; finalizers?: string[] };
  spec: { subnet: string; ips: string[] };
  /** allocatedIPs is a JSON document in a string: IP → {pod: "ns/name", podUid}. */
  status?: { allocatedIPs?: string; allocatedIPCount?: number };
}

const allocationsOf = (pool: SpiderIPPool | undefined): Record<string, { pod: string; podUid: string }> =>
  JSON.parse(pool?.status?.allocatedIPs ?? '{}') as Record<string, { pod: string; podUid: string }>;

/** A port on 127.0.0.1 that nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
  });
}

async function choosePorts(base: number | undefined, count: number): Promise<number[]> {
  if (base === undefined) {
    const ports = new Set<number>();
    while (ports.size < count) ports.add(await freePort());
    return [...ports];
  }
  const ports = Array.from({ length: count }, (_, index) => base + index);
  if (!Number.isInteger(base) || base < 1024 || ports.at(-1)! > 65535) throw new Error(`Spiderpool port base ${base}: ${count} ports from it must lie within 1024-65535`);
  const busy = [];
  for (const port of ports) if (await portInUse(port)) busy.push(port);
  if (busy.length > 0) throw new Error(`Spiderpool port base ${base}: 127.0.0.1 port(s) ${busy.join(', ')} already in use`);
  return ports;
}

/** Daemons this process started; SIGKILLed if it exits first, so that none outlives a failed run. */
const daemons = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of daemons) child.kill('SIGKILL');
});

interface Daemon {
  name: string;
  child: ChildProcess;
  log: string;
}

function startDaemon(name: string, binary: string, args: string[], env: Record<string, string>, log: string): Daemon {
  const fd = openSync(log, 'a');
  try {
    const child = spawn(binary, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', fd, fd] });
    daemons.add(child);
    child.once('exit', () => daemons.delete(child));
    return { name, child, log };
  } finally {
    closeSync(fd);
  }
}

/** The daemons ignore SIGTERM (their handler closes the servers and keeps running): SIGKILL, then wait for the exit. */
async function killDaemon(daemon: Daemon): Promise<void> {
  const { child } = daemon;
  if (!running(daemon)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

const running = (daemon: Daemon) => daemon.child.exitCode === null && daemon.child.signalCode === null;
const runningPids = (list: Daemon[]) => list.filter(running).flatMap((daemon) => (daemon.child.pid ? [daemon.child.pid] : []));

async function waitReady(daemon: Daemon, port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(daemon)) {
      const tail = readFileSync(daemon.log, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
      throw new Error(`${daemon.name} exited (${daemon.child.exitCode ?? daemon.child.signalCode}); last lines of ${daemon.log}:\n${tail}`);
    }
    const ready = await fetch(`http://127.0.0.1:${port}/v1/runtime/readiness`).then((response) => response.ok, () => false);
    if (ready) return;
    await sleep(250);
  }
  throw new Error(`${daemon.name} was not ready on 127.0.0.1:${port} within ${timeoutMs / 1000} s (log ${daemon.log})`);
}

/** An empty network namespace per sandbox, made with `ip netns add`: the plugin opens CNI_NETNS and sends a gratuitous ARP in it. */
class SandboxNamespaces implements SandboxNetns {
  private readonly live = new Set<string>();
  private readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  private name(containerID: string): string {
    return `${this.prefix}-${containerID.slice(0, 12)}`;
  }

  path(containerID: string): string {
    return `/var/run/netns/${this.name(containerID)}`;
  }

  async create(containerID: string): Promise<string> {
    const name = this.name(containerID);
    await execFileAsync('ip', ['netns', 'add', name]);
    this.live.add(name);
    return this.path(containerID);
  }

  async remove(containerID: string): Promise<void> {
    const name = this.name(containerID);
    if (!this.live.delete(name)) return;
    await execFileAsync('ip', ['netns', 'delete', name]);
  }

  async removeAll(): Promise<void> {
    for (const name of [...this.live]) {
      await execFileAsync('ip', ['netns', 'delete', name]).catch(() => undefined);
      this.live.delete(name);
    }
  }
}

/** Fails with a clear message when this process cannot make network namespaces (root and iproute2 are needed). */
async function checkNetnsSupport(namespaces: SandboxNamespaces): Promise<void> {
  const probe = 'probe'.padEnd(12, '0');
  try {
    await namespaces.create(probe);
    await namespaces.remove(probe);
  } catch (error) {
    throw new Error(`Spiderpool's plugin opens CNI_NETNS, and \`ip netns add\` failed (root and iproute2 are needed): ${(error as Error).message}`, { cause: error });
  }
}

function webhookConfigurations(name: string, port: number, caBundle: string) {
  const webhook = (kind: 'mutate' | 'validate', operations: string[]) => ({
    name: 'spiderippool.spiderpool.spidernet.io',
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    clientConfig: { url: `https://127.0.0.1:${port}/${kind}-spiderpool-spidernet-io-v2beta1-spiderippool`, caBundle },
    rules: [{ apiGroups: [GROUP], apiVersions: [VERSION], operations, resources: ['spiderippools'] }],
  });
  const mutating: V1MutatingWebhookConfiguration = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [webhook('mutate', ['CREATE', 'UPDATE'])],
  };
  const validating: V1ValidatingWebhookConfiguration = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name },
    webhooks: [webhook('validate', ['CREATE', 'UPDATE', 'DELETE'])],
  };
  return { mutating, validating };
}

/**
 * Spiderpool v1.2.2 as its Helm chart runs it, on the local stack: its CRDs; spiderpool-controller (the
 * webhooks for SpiderIPPools, registered here with the stack's CA, and the IP GC); one spiderpool-agent per
 * simulated node, each with its own socket and port, serving that node's `spiderpool` plugin calls; one
 * SpiderIPPool of exactly the IPs asked for, named by the pods' annotation. All on 127.0.0.1. Cleanup removes
 * all of it, the CRDs included.
 */
export async function prepareSpiderpool(context: IpamContext, options: SpiderpoolOptions = {}): Promise<PreparedIpam> {
  const bin = path.join(context.peersDir, 'bin');
  const dir = path.join(stackPaths().dir, 'bench', `spiderpool-${context.tag}`);
  // The daemons' and the plugin's logs outlive the run, for what went wrong.
  const logs = path.join(stackPaths().logs, `spiderpool-${context.tag}`);
  mkdirSync(dir, { recursive: true });
  mkdirSync(logs, { recursive: true });
  const namespaces = new SandboxNamespaces(`tpsp-${context.tag}`);
  await checkNetnsSupport(namespaces);

  const kubeConfig = context.kubeConfig;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const crds = readManifests(path.join(context.peersDir, 'spiderpool-crds'));
  const crdNames = crds.map((crd) => crd.metadata!.name!);
  // The controller's leader Lease lives in the namespace its pod would run in.
  const systemNamespace = `spiderpool-${context.tag}`;
  const webhookName = `spiderpool-bench-${context.tag}`;
  const poolName = `bench-${context.tag}`;
  const [controllerPort, webhookPort, ...agentPorts] = await choosePorts(options.portBase, 2 + context.nodes.length);

  // The chart's configmap (conf.yml) with what needs no more than the API server: no Multus, SR-IOV,
  // KubeVirt or subnet objects, no Pod webhook, no host sysctls.
  const config = (socket: string) => ({
    ipamUnixSocketPath: socket,
    enableIPv4: true,
    enableIPv6: false,
    enableStatefulSet: true,
    enableKubevirtStaticIP: false,
    enableSpiderSubnet: false,
    enableAutoPoolForApplication: false,
    enableIPConflictDetection: false,
    enableGatewayDetection: false,
    tuneSysctlConfig: false,
    podResourceInject: { enabled: false },
    agent: { networkResourcePlugin: { enabled: false } },
  });
  const common = {
    KUBECONFIG: context.kubeconfigPath,
    SPIDERPOOL_LISTEN_HOST: '127.0.0.1',
    SPIDERPOOL_POD_NAMESPACE: systemNamespace,
    SPIDERPOOL_ENABLED_METRIC: 'false',
    SPIDERPOOL_GOPS_LISTEN_PORT: '',
    SPIDERPOOL_LOG_LEVEL: 'info',
  };
  const controllerConfig = path.join(dir, 'controller.yml');
  writeFileSync(controllerConfig, stringify(config(path.join(dir, 'unused.sock'))));
  // controller-runtime's webhook server reads tls.crt and tls.key from the certificate's folder.
  const tls = path.join(dir, 'tls');
  mkdirSync(tls, { recursive: true });
  copyFileSync(stackPaths().servingCert, path.join(tls, 'tls.crt'));
  copyFileSync(stackPaths().servingKey, path.join(tls, 'tls.key'));
  const controllerEnv = {
    ...common,
    SPIDERPOOL_POD_NAME: 'spiderpool-controller-bench',
    SPIDERPOOL_HEALTH_PORT: String(controllerPort),
    SPIDERPOOL_WEBHOOK_PORT: String(webhookPort),
    ...(options.gcIntervalSeconds !== undefined ? { SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: String(options.gcIntervalSeconds) } : {}),
  };
  let controller: Daemon | undefined;
  const startController = async () => {
    controller = startDaemon(
      'spiderpool-controller',
      path.join(bin, 'spiderpool-controller'),
      ['daemon', `--config-path=${controllerConfig}`, `--tls-server-cert=${path.join(tls, 'tls.crt')}`, `--tls-server-key=${path.join(tls, 'tls.key')}`],
      controllerEnv,
      path.join(logs, 'controller.log'),
    );
    await waitReady(controller, controllerPort!);
  };
  const agentSocket = (index: number) => path.join(dir, `agent-${index}.sock`);
  const agents: Daemon[] = [];

  const cleanup = async () => {
    for (const remove of [() => admission.deleteMutatingWebhookConfiguration({ name: webhookName }), () => admission.deleteValidatingWebhookConfiguration({ name: webhookName })]) {
      await remove().catch(() => undefined);
    }
    for (const daemon of [...agents, ...(controller ? [controller] : [])]) await killDaemon(daemon);
    await namespaces.removeAll();
    // With no controller left to take the finalizers off, the harness does, so that the CRDs can go.
    const noFinalizers = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    for (const kind of [ENDPOINTS, POOLS]) {
      const list = (await custom.listClusterCustomObject(kind).catch(() => ({ items: [] }))) as { items: { metadata: { name: string; namespace?: string } }[] };
      for (const { metadata } of list.items) {
        const body = { metadata: { finalizers: null } };
        const patch = metadata.namespace
          ? custom.patchNamespacedCustomObject({ ...kind, namespace: metadata.namespace, name: metadata.name, body }, noFinalizers)
          : custom.patchClusterCustomObject({ ...kind, name: metadata.name, body }, noFinalizers);
        await patch.catch(() => undefined);
      }
    }
    for (const name of crdNames) await extensions.deleteCustomResourceDefinition({ name }).catch(() => undefined);
    const deadline = Date.now() + 60_000;
    for (const name of crdNames) {
      while (Date.now() < deadline && (await extensions.readCustomResourceDefinition({ name }).then(() => true, () => false))) await sleep(250);
    }
    await core.deleteNamespace({ name: systemNamespace }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await applyManifests(kubeConfig, crds);
    await waitForCrdsEstablished(kubeConfig, crdNames);
    await core.createNamespace({ body: { metadata: { name: systemNamespace } } });
    const caBundle = readFileSync(stackPaths().caCert).toString('base64');
    const { mutating, validating } = webhookConfigurations(webhookName, webhookPort!, caBundle);
    await applyManifests(kubeConfig, [mutating, validating] as Parameters<typeof applyManifests>[1]);
    await startController();
    context.nodes.forEach((node, index) => {
      const agentConfig = path.join(dir, `agent-${index}.yml`);
      writeFileSync(agentConfig, stringify(config(agentSocket(index))));
      agents.push(
        startDaemon(
          `spiderpool-agent ${node}`,
          path.join(bin, 'spiderpool-agent'),
          ['daemon', `--config-path=${agentConfig}`],
          {
            ...common,
            SPIDERPOOL_POD_NAME: `spiderpool-agent-${index}`,
            SPIDERPOOL_NODE_NAME: node,
            SPIDERPOOL_HEALTH_PORT: String(agentPorts[index]),
            // Only read as a name: without it the agent refuses every pool ("cluster-network multus isn't set").
            MULTUS_CLUSTER_NETWORK: 'kube-system/underlay',
          },
          path.join(logs, `agent-${index}.log`),
        ),
      );
    });
    for (const [index, agent] of agents.entries()) await waitReady(agent, agentPorts[index]!);

    const [first, last] = hostRange(SUBNET, context.ips);
    // The mutating webhook is what gives a pool its finalizer: retried until the controller serves it.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const created = (await custom
        .createClusterCustomObject({ ...POOLS, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'SpiderIPPool', metadata: { name: poolName }, spec: { subnet: SUBNET, ips: [`${first}-${last}`] } } })
        .catch((error: unknown) => {
          if (Date.now() > deadline) throw new Error(`creating SpiderIPPool ${poolName}: ${(error as { body?: string }).body ?? (error as Error).message}`, { cause: error });
          return undefined;
        })) as SpiderIPPool | undefined;
      if (created) {
        if (!created.metadata.finalizers?.length) throw new Error(`SpiderIPPool ${poolName} was created without the controller's finalizer: its mutating webhook was not called`);
        break;
      }
      await sleep(500);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }

  const readPool = async () => (await custom.getClusterCustomObject({ ...POOLS, name: poolName })) as SpiderIPPool;
  const netconfs = new Map(
    context.nodes.map((node, index) => [
      node,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'underlay',
        type: 'macvlan',
        ipam: { type: 'spiderpool', log_file_path: path.join(logs, 'plugin.log'), ipam_unix_socket_path: agentSocket(index) },
      }),
    ]),
  );
  return {
    name: 'spiderpool',
    binary: path.join(bin, 'spiderpool'),
    cniPath: bin,
    netconf: (node) => netconfs.get(node)!,
    sandboxNetns: namespaces,
    podAnnotations: { 'ipam.spidernet.io/ippool': JSON.stringify({ ipv4: [poolName] }) },
    allocatedIPs: async () => Object.keys(allocationsOf(await readPool())),
    processes: () => ({
      'spiderpool-controller': controller ? runningPids([controller]) : [],
      'spiderpool-agents': runningPids(agents),
    }),
    reclaim: {
      reclaimer: 'spiderpool-controller',
      kill: async () => {
        if (controller) await killDaemon(controller);
      },
      restart: startController,
      writeDirtyRecords: async (count, namespace) => {
        const range = ipsInRange(...hostRange(SUBNET, context.ips));
        let written: string[] = [];
        await updateWithRetry(readPool, async (pool) => {
          const allocations = allocationsOf(pool);
          written = range.filter((ip) => !allocations[ip]).slice(0, count);
          if (written.length < count) throw new Error(`SpiderIPPool ${poolName} has ${written.length} free IPs, not the ${count} asked for`);
          written.forEach((ip, index) => (allocations[ip] = { pod: `${namespace}/ghost-${index}`, podUid: randomUUID() }));
          const status = { ...pool.status, allocatedIPs: JSON.stringify(allocations), allocatedIPCount: Object.keys(allocations).length };
          await custom.replaceClusterCustomObjectStatus({ ...POOLS, name: poolName, body: { ...pool, status } });
        });
        return written;
      },
    },
    cleanup,
  };
}
