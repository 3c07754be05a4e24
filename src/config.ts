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

/** Settings shared by the worker and the agent, from environment variables (each documented in docs/configuration.md). */
export function loadCommonConfig() {
  return {
    temporalAddress: env('TEMPORAL_ADDRESS', '127.0.0.1:7233'),
    temporalNamespace: env('TEMPORAL_NAMESPACE', 'default'),
    taskQueue: env('TIDEPOOL_TASK_QUEUE', 'tidepool'),
  };
}

export function loadWorkerConfig() {
  return {
    ...loadCommonConfig(),
    kubeconfig: process.env.KUBECONFIG || undefined,
    metricsHost: env('TIDEPOOL_METRICS_HOST', '127.0.0.1'),
    metricsPort: Number(env('TIDEPOOL_METRICS_PORT', '9464')),
    shutdownGraceMs: parseDuration(env('TIDEPOOL_SHUTDOWN_GRACE', '30s'), 'TIDEPOOL_SHUTDOWN_GRACE'),
  };
}

export function loadAgentConfig() {
  return {
    ...loadCommonConfig(),
    socketPath: env('TIDEPOOL_AGENT_SOCKET', '/run/tidepool/agent.sock'),
    spoolDir: env('TIDEPOOL_SPOOL_DIR', '/var/lib/tidepool/cni-spool'),
    nodeName: env('NODE_NAME', ''),
    addTimeoutMs: parseDuration(env('TIDEPOOL_ADD_TIMEOUT', '25s'), 'TIDEPOOL_ADD_TIMEOUT'),
    delTimeoutMs: parseDuration(env('TIDEPOOL_DEL_TIMEOUT', '8s'), 'TIDEPOOL_DEL_TIMEOUT'),
    spoolReplayIntervalMs: parseDuration(env('TIDEPOOL_SPOOL_REPLAY_INTERVAL', '10s'), 'TIDEPOOL_SPOOL_REPLAY_INTERVAL'),
  };
}
