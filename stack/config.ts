import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const cache = process.env.TIDEPOOL_CACHE ?? path.join(root, '.cache');

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`${name}=${raw} is not a TCP port`);
  }
  return value;
}

/** Which Temporal the stack runs: the CLI's dev server (one process, SQLite) or the real server on PostgreSQL. */
export type TemporalKind = 'dev' | 'server';

/**
 * TIDEPOOL_TEMPORAL as the stack reads it: `dev`, `server`, or unset (then the kind that runs now, else the dev
 * server). `testcontainers` is the test harness's (a container it starts itself), so the stack has no choice.
 */
export function temporalKind(raw: string | undefined): TemporalKind | undefined {
  if (raw === undefined || raw === '' || raw === 'testcontainers') return undefined;
  if (raw === 'dev' || raw === 'server') return raw;
  throw new Error(`TIDEPOOL_TEMPORAL=${raw} is none of dev, server (or testcontainers, for the test suite)`);
}

export function workerCount(raw: string | undefined, what = 'TIDEPOOL_WORKERS'): number {
  if (raw === undefined || raw === '') return 1;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 16) throw new Error(`${what}=${raw} is not a worker count from 1 to 16`);
  return value;
}

/** Where the local stack keeps its binaries, state and logs, and the 127.0.0.1 ports it listens on. */
export const stackConfig = {
  root,
  binDir: path.join(cache, 'bin'),
  dir: process.env.TIDEPOOL_STACK_DIR ?? path.join(cache, 'stack'),
  crdDir: path.join(root, 'deploy', 'helm', 'tidepool', 'crds'),
  host: '127.0.0.1',
  ports: {
    etcdClient: port('TIDEPOOL_ETCD_PORT', 23790),
    etcdPeer: port('TIDEPOOL_ETCD_PEER_PORT', 23800),
    apiServer: port('TIDEPOOL_APISERVER_PORT', 6443),
    controllerManager: port('TIDEPOOL_KCM_PORT', 10257),
    temporal: port('TIDEPOOL_TEMPORAL_PORT', 7233),
    temporalUi: port('TIDEPOOL_TEMPORAL_UI_PORT', 8233),
    temporalHttp: port('TIDEPOOL_TEMPORAL_HTTP_PORT', 7243),
    temporalMetrics: port('TIDEPOOL_TEMPORAL_METRICS_PORT', 7244),
    /** The stack-run Tidepool worker's /metrics (TIDEPOOL_METRICS_PORT of the worker). */
    workerMetrics: port('TIDEPOOL_WORKER_METRICS_PORT', 9464),
    /** The stack-run admission webhook (HTTPS, the stack's serving certificate). */
    webhook: port('TIDEPOOL_STACK_WEBHOOK_PORT', 9443),
    /** PostgreSQL under the real Temporal server (`--temporal server`). */
    postgres: port('TIDEPOOL_POSTGRES_PORT', 25432),
    /**
     * The real Temporal server's internal ports, seven from this one up: the frontend's membership port, then
     * the history, matching and worker services' gRPC and membership ports.
     */
    temporalInternal: port('TIDEPOOL_TEMPORAL_INTERNAL_PORT', 7250),
  },
  /** The Temporal the stack runs; undefined: the one that runs now, else the dev server. */
  temporal: temporalKind(process.env.TIDEPOOL_TEMPORAL),
  /** How many Tidepool workers `up` runs on the task queue (`--workers N`). */
  workers: workerCount(process.env.TIDEPOOL_WORKERS),
  /** How long the node-lifecycle controller waits for a heartbeat before it marks a node NotReady. */
  nodeMonitorGracePeriod: process.env.TIDEPOOL_NODE_MONITOR_GRACE_PERIOD ?? '20s',
  temporalNamespace: 'default',
};

export type StackConfig = typeof stackConfig;

export function stackPaths(config: StackConfig = stackConfig) {
  const dir = config.dir;
  const pki = path.join(dir, 'pki');
  return {
    dir,
    pki,
    caCert: path.join(pki, 'ca.crt'),
    caKey: path.join(pki, 'ca.key'),
    servingCert: path.join(pki, 'serving.crt'),
    servingKey: path.join(pki, 'serving.key'),
    serviceAccountKey: path.join(pki, 'sa.key'),
    tokens: path.join(pki, 'tokens.csv'),
    adminToken: path.join(pki, 'admin.token'),
    kubeconfig: path.join(dir, 'kubeconfig'),
    logs: path.join(dir, 'logs'),
    pids: path.join(dir, 'pids'),
    temporalDb: path.join(dir, 'temporal.sqlite'),
    /** The real Temporal server's PostgreSQL cluster (initdb), and its config file and dynamic config. */
    postgresData: path.join(dir, 'postgres'),
    temporalServerDir: path.join(dir, 'temporal-server'),
    info: path.join(dir, 'stack.json'),
    agentSocket: path.join(dir, 'agent', 'agent.sock'),
    cniSpool: path.join(dir, 'agent', 'cni-spool'),
    // etcd's data lives on tmpfs: Debian's etcd 3.4 has no --unsafe-no-fsync, and fsync on disk is slow.
    etcdData: path.join('/dev/shm', `tidepool-etcd-${Buffer.from(dir).toString('base64url').slice(-24)}`),
  };
}

export type StackPaths = ReturnType<typeof stackPaths>;
