import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isDnsSubdomain } from './contract/attachment.ts';
import { NODE_DEFAULTS } from './contract/defaults.ts';
import { TASK_QUEUE } from './temporal/names.ts';

/** Parses a duration such as `500ms`, `30s`, `5m`, `1h` (a bare number is seconds) into milliseconds. */
export function parseDuration(text: string, name: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!match) throw new Error(`${name}=${JSON.stringify(text)} is not a duration such as 500ms, 30s, 5m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

function env(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

function readPem(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`${name}=${JSON.stringify(file)} cannot be read: ${(error as Error).message}`, { cause: error });
  }
}

/** TLS for the Temporal connection, in the shape both Connection and NativeConnection take. */
export interface TemporalTls {
  serverNameOverride?: string;
  serverRootCACertificate?: Buffer;
  clientCertPair?: { crt: Buffer; key: Buffer };
}

/**
 * How to reach Temporal: the address, TLS (on when TEMPORAL_TLS is true, when any TLS file or server name is
 * given, or with an API key, as Temporal Cloud requires) and the API key, sent as a bearer token.
 */
export function loadTemporalConnection(): { address: string; tls?: TemporalTls | false; apiKey?: string } {
  const address = env('TEMPORAL_ADDRESS', '127.0.0.1:7233');
  const caFile = env('TEMPORAL_TLS_CA_FILE', '');
  const certFile = env('TEMPORAL_TLS_CERT_FILE', '');
  const keyFile = env('TEMPORAL_TLS_KEY_FILE', '');
  const serverName = env('TEMPORAL_TLS_SERVER_NAME', '');
  const apiKey = env('TEMPORAL_API_KEY', '').trim();
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new Error('TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE name the client certificate and its key: give both or neither');
  }
  const tlsEnabled = booleanEnv('TEMPORAL_TLS', Boolean(caFile || certFile || serverName || apiKey));
  if (!tlsEnabled) {
    if (caFile || certFile || serverName) throw new Error('TEMPORAL_TLS=false contradicts the TEMPORAL_TLS_* settings given');
    // The SDK turns TLS on whenever an API key is given unless told otherwise.
    return { address, ...(apiKey ? { tls: false, apiKey } : {}) };
  }
  const tls: TemporalTls = {
    ...(serverName ? { serverNameOverride: serverName } : {}),
    ...(caFile ? { serverRootCACertificate: readPem('TEMPORAL_TLS_CA_FILE', caFile) } : {}),
    ...(certFile ? { clientCertPair: { crt: readPem('TEMPORAL_TLS_CERT_FILE', certFile), key: readPem('TEMPORAL_TLS_KEY_FILE', keyFile) } } : {}),
  };
  return { address, tls, ...(apiKey ? { apiKey } : {}) };
}

/** Settings shared by the worker, the agent and the CLI, from environment variables (each documented in docs/configuration.md). */
export function loadCommonConfig() {
  const temporalConnection = loadTemporalConnection();
  return {
    temporalAddress: temporalConnection.address,
    temporalConnection,
    temporalNamespace: env('TEMPORAL_NAMESPACE', 'default'),
    taskQueue: env('TIDEPOOL_TASK_QUEUE', TASK_QUEUE),
  };
}

export function loadWorkerConfig() {
  const common = loadCommonConfig();
  const leaseDurationMs = parseDuration(env('TIDEPOOL_CONTROLLER_LEASE_DURATION', '15s'), 'TIDEPOOL_CONTROLLER_LEASE_DURATION');
  if (leaseDurationMs < 1000) throw new Error(`TIDEPOOL_CONTROLLER_LEASE_DURATION must be at least 1s, not ${process.env.TIDEPOOL_CONTROLLER_LEASE_DURATION}`);
  const leaseName = env('TIDEPOOL_CONTROLLER_LEASE', `${common.taskQueue}-controller`);
  if (!isDnsSubdomain(leaseName)) {
    throw new Error(`the controller Lease name ${JSON.stringify(leaseName)} is not a Kubernetes object name (lowercase letters, digits, '-' and '.'); set TIDEPOOL_CONTROLLER_LEASE`);
  }
  return {
    ...common,
    kubeconfig: process.env.KUBECONFIG || undefined,
    metricsHost: env('TIDEPOOL_METRICS_HOST', '127.0.0.1'),
    metricsPort: Number(env('TIDEPOOL_METRICS_PORT', '9464')),
    shutdownGraceMs: parseDuration(env('TIDEPOOL_SHUTDOWN_GRACE', '30s'), 'TIDEPOOL_SHUTDOWN_GRACE'),
    controllerLease: {
      // The workers of one task queue are one fleet, which elects one controller.
      name: leaseName,
      namespace: env('TIDEPOOL_CONTROLLER_LEASE_NAMESPACE', env('POD_NAMESPACE', 'default')),
      identity: env('POD_NAME', `${hostname()}-${process.pid}`),
      durationMs: leaseDurationMs,
    },
  };
}

export function loadAgentConfig() {
  return {
    ...loadCommonConfig(),
    socketPath: env('TIDEPOOL_AGENT_SOCKET', NODE_DEFAULTS.agentSocket),
    spoolDir: env('TIDEPOOL_SPOOL_DIR', NODE_DEFAULTS.spoolDir),
    nodeName: env('NODE_NAME', ''),
    addTimeoutMs: parseDuration(env('TIDEPOOL_ADD_TIMEOUT', NODE_DEFAULTS.agentAddTimeout), 'TIDEPOOL_ADD_TIMEOUT'),
    delTimeoutMs: parseDuration(env('TIDEPOOL_DEL_TIMEOUT', NODE_DEFAULTS.agentDelTimeout), 'TIDEPOOL_DEL_TIMEOUT'),
    statusTimeoutMs: parseDuration(env('TIDEPOOL_STATUS_TIMEOUT', NODE_DEFAULTS.agentStatusTimeout), 'TIDEPOOL_STATUS_TIMEOUT'),
    spoolReplayIntervalMs: parseDuration(env('TIDEPOOL_SPOOL_REPLAY_INTERVAL', '10s'), 'TIDEPOOL_SPOOL_REPLAY_INTERVAL'),
  };
}

function booleanEnv(name: string, fallback: boolean): boolean {
  const value = env(name, String(fallback)).toLowerCase();
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new Error(`${name}=${JSON.stringify(value)} is not true or false`);
}

export function loadWebhookConfig() {
  const certFile = env('TIDEPOOL_WEBHOOK_CERT_FILE', '');
  const keyFile = env('TIDEPOOL_WEBHOOK_KEY_FILE', '');
  if (!certFile || !keyFile) throw new Error('TIDEPOOL_WEBHOOK_CERT_FILE and TIDEPOOL_WEBHOOK_KEY_FILE must name the serving certificate and key (PEM)');
  return {
    kubeconfig: process.env.KUBECONFIG || undefined,
    host: env('TIDEPOOL_WEBHOOK_HOST', '127.0.0.1'),
    port: Number(env('TIDEPOOL_WEBHOOK_PORT', '9443')),
    certFile,
    keyFile,
    refuseDeleteWithAllocatedIPs: booleanEnv('TIDEPOOL_REFUSE_POOL_DELETE', true),
    certReloadIntervalMs: parseDuration(env('TIDEPOOL_WEBHOOK_CERT_RELOAD_INTERVAL', '1m'), 'TIDEPOOL_WEBHOOK_CERT_RELOAD_INTERVAL'),
  };
}
