// The processes of the local stack, as specs for processes.ts: Kubernetes and Temporal, and Tidepool itself
// run from source; with the addresses they serve on.
import path from 'node:path';
import { devServerSearchAttributeArgs } from '../src/temporal/search-attributes.ts';
import type { StackConfig, StackPaths, TemporalKind } from './config.ts';
import { postgresSpec, temporalServerSpec } from './temporal-server.ts';
import type { ProcessSpec } from './processes.ts';
import { CNI_BINARY } from '../scripts/build-cni.ts';

/** The controllers kube-controller-manager runs. No node-ipam-controller: Tidepool is the IPAM. */
export const CONTROLLERS = [
  'garbage-collector-controller',
  'namespace-controller',
  'replicaset-controller',
  'deployment-controller',
  'statefulset-controller',
  'daemonset-controller',
  'job-controller',
  'node-lifecycle-controller',
  'taint-eviction-controller',
  'pod-garbage-collector-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'root-ca-certificate-publisher-controller',
];

export const COMPONENTS = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'temporal',
  'postgres',
  'temporal-server',
  'tidepool-webhook',
  'tidepool-worker',
  'tidepool-agent',
  'tidepool-kubelet',
] as const;

/** The stack's components that make up each kind of Temporal. */
export const TEMPORAL_COMPONENTS: Record<TemporalKind, readonly ComponentName[]> = {
  dev: ['temporal'],
  server: ['postgres', 'temporal-server'],
};

/** The Node the stack's agent serves, which the stack's simulated kubelet registers and keeps Ready. */
export const STACK_NODE = 'local';
/**
 * The label the test suite puts on its namespaces (value: the run). Its workers reclaim only in that run's
 * namespaces, and the stack's worker never in any of them.
 */
export const SUITE_NAMESPACE_LABEL = 'tidepool.dev/test-run';

/** The namespace whose pods the stack's simulated kubelet binds to its node and starts. */
export const STACK_POD_NAMESPACE = 'default';
/** A component; the workers after the first (`--workers N`) are tidepool-worker-2 and on. */
export type ComponentName = (typeof COMPONENTS)[number] | `tidepool-worker-${number}`;

/** The name of the stack's worker number `index` (from 1). */
export function workerName(index: number): ComponentName {
  return index === 1 ? 'tidepool-worker' : `tidepool-worker-${index}`;
}

/** A Temporal server the stack does not run itself (e.g. a container started by testcontainers). */
export interface ExternalTemporal {
  address: string;
  ui: string;
}

/** The stack's processes but Tidepool's, with the Temporal of `kind` (none with an external one). */
export function components(config: StackConfig, paths: StackPaths, kind: TemporalKind, external?: ExternalTemporal): ProcessSpec[] {
  const all = localComponents(config, paths);
  const temporal = new Set<string>(Object.values(TEMPORAL_COMPONENTS).flat());
  const wanted = new Set<string>(external ? [] : TEMPORAL_COMPONENTS[kind]);
  return all.filter((spec) => !temporal.has(spec.name) || wanted.has(spec.name));
}

/** Every process the stack can run but Tidepool's, both kinds of Temporal included. */
export function localComponents(config: StackConfig, paths: StackPaths): ProcessSpec[] {
  const { host, ports } = config;
  const bin = (name: string) => path.join(config.binDir, name);
  return [
    {
      name: 'etcd',
      command: 'etcd',
      args: [
        '--name', 'tidepool',
        '--data-dir', paths.etcdData,
        '--listen-client-urls', `http://${host}:${ports.etcdClient}`,
        '--advertise-client-urls', `http://${host}:${ports.etcdClient}`,
        '--listen-peer-urls', `http://${host}:${ports.etcdPeer}`,
        '--initial-advertise-peer-urls', `http://${host}:${ports.etcdPeer}`,
        '--initial-cluster', `tidepool=http://${host}:${ports.etcdPeer}`,
        '--quota-backend-bytes', String(4 * 1024 ** 3),
      ],
    },
    {
      name: 'kube-apiserver',
      command: bin('kube-apiserver'),
      args: [
        `--etcd-servers=http://${host}:${ports.etcdClient}`,
        `--bind-address=${host}`,
        `--advertise-address=${host}`,
        `--secure-port=${ports.apiServer}`,
        `--tls-cert-file=${paths.servingCert}`,
        `--tls-private-key-file=${paths.servingKey}`,
        `--cert-dir=${path.join(paths.dir, 'apiserver-certs')}`,
        `--client-ca-file=${paths.caCert}`,
        `--token-auth-file=${paths.tokens}`,
        '--authorization-mode=RBAC',
        `--service-account-issuer=https://${host}:${ports.apiServer}`,
        `--service-account-key-file=${paths.serviceAccountKey}`,
        `--service-account-signing-key-file=${paths.serviceAccountKey}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        '--allow-privileged=true',
        '--endpoint-reconciler-type=none',
        // /debug/pprof for benchmark profiles; it needs the admin token like every other path.
        '--profiling=true',
      ],
    },
    {
      name: 'kube-controller-manager',
      command: bin('kube-controller-manager'),
      args: [
        `--kubeconfig=${paths.kubeconfig}`,
        `--authentication-kubeconfig=${paths.kubeconfig}`,
        `--authorization-kubeconfig=${paths.kubeconfig}`,
        '--leader-elect=false',
        `--bind-address=${host}`,
        `--secure-port=${ports.controllerManager}`,
        `--tls-cert-file=${paths.servingCert}`,
        `--tls-private-key-file=${paths.servingKey}`,
        `--controllers=${CONTROLLERS.join(',')}`,
        `--service-account-private-key-file=${paths.serviceAccountKey}`,
        `--root-ca-file=${paths.caCert}`,
        '--node-monitor-period=2s',
        `--node-monitor-grace-period=${config.nodeMonitorGracePeriod}`,
        // Defaults are 20/30; the workload controllers must not be the bottleneck of the benchmarks.
        '--kube-api-qps=200',
        '--kube-api-burst=400',
        '--profiling=false',
      ],
    },
    {
      name: 'temporal',
      command: bin('temporal'),
      args: [
        'server', 'start-dev',
        '--ip', host,
        '--port', String(ports.temporal),
        '--ui-port', String(ports.temporalUi),
        '--http-port', String(ports.temporalHttp),
        '--metrics-port', String(ports.temporalMetrics),
        '--db-filename', paths.temporalDb,
        // SQLite's default rollback journal writes and syncs a journal file for every transaction: in a 300-pod
        // create, WAL with synchronous=normal halved the dev server's CPU per pod (docs/decisions.md). A killed
        // server loses nothing; only a machine crash could lose the last transactions.
        '--sqlite-pragma', 'journal_mode=wal',
        '--sqlite-pragma', 'synchronous=normal',
        '--ui-disable-news-fetch',
        '--log-format', 'json',
        '--log-level', 'warn',
        ...devServerSearchAttributeArgs(),
      ],
    },
    postgresSpec(config, paths),
    temporalServerSpec(config, paths),
  ];
}

/**
 * Tidepool itself on the stack: the admission webhook, the worker, one node agent, and the simulated kubelet of
 * the agent's node, which starts the pods of the `default` namespace through tidepool-cni; all run from source
 * with the project's Node.js. `workerEnv` adds to the worker's environment (reclaim settings, say).
 */
export function tidepoolComponents(
  config: StackConfig,
  paths: StackPaths,
  temporalAddress = localTemporalAddress(config),
  workerEnv: Record<string, string> = {},
  workers = config.workers,
): ProcessSpec[] {
  const env = {
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: config.temporalNamespace,
    KUBECONFIG: paths.kubeconfig,
  };
  return [
    {
      name: 'tidepool-webhook',
      command: process.execPath,
      args: [path.join(config.root, 'src', 'webhook', 'main.ts')],
      match: 'webhook/main.ts',
      env: {
        KUBECONFIG: paths.kubeconfig,
        TIDEPOOL_WEBHOOK_HOST: config.host,
        TIDEPOOL_WEBHOOK_PORT: String(config.ports.webhook),
        TIDEPOOL_WEBHOOK_CERT_FILE: paths.servingCert,
        TIDEPOOL_WEBHOOK_KEY_FILE: paths.servingKey,
      },
    },
    // `--workers N`: N worker processes on the task queue, each with its own pid file, log and metrics port.
    ...Array.from({ length: workers }, (_, i) => ({
      name: workerName(i + 1),
      command: process.execPath,
      args: [path.join(config.root, 'src', 'worker', 'main.ts')],
      match: 'worker/main.ts',
      env: {
        ...env,
        TIDEPOOL_METRICS_PORT: String(workerMetricsPort(config, i + 1)),
        TIDEPOOL_GC_NAMESPACE_SELECTOR: `!${SUITE_NAMESPACE_LABEL}`,
        ...workerEnv,
      },
    })),
    {
      name: 'tidepool-agent',
      command: process.execPath,
      args: [path.join(config.root, 'src', 'agent', 'main.ts')],
      match: 'agent/main.ts',
      env: { ...env, TIDEPOOL_AGENT_SOCKET: paths.agentSocket, TIDEPOOL_SPOOL_DIR: paths.cniSpool, NODE_NAME: STACK_NODE },
    },
    {
      name: 'tidepool-kubelet',
      command: process.execPath,
      args: [path.join(config.root, 'sim', 'stack-node.ts')],
      match: 'sim/stack-node.ts',
      env: {
        KUBECONFIG: paths.kubeconfig,
        NODE_NAME: STACK_NODE,
        TIDEPOOL_KUBELET_NAMESPACE: STACK_POD_NAMESPACE,
        TIDEPOOL_CNI_BINARY: CNI_BINARY,
        TIDEPOOL_AGENT_SOCKET: paths.agentSocket,
        TIDEPOOL_SPOOL_DIR: paths.cniSpool,
        PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      },
    },
  ];
}

/** Worker number `index`'s /metrics port: TIDEPOOL_WORKER_METRICS_PORT for the first, then the next ones up. */
export function workerMetricsPort(config: StackConfig, index: number): number {
  return config.ports.workerMetrics + index - 1;
}

export function localTemporalAddress(config: StackConfig): string {
  return `${config.host}:${config.ports.temporal}`;
}

export function apiServerUrl(config: StackConfig): string {
  return `https://${config.host}:${config.ports.apiServer}`;
}
