/** The defaults that the node's two sides, tidepool-cni (its netconf's `ipam` keys) and the agent (its environment), must agree on. */
export const NODE_DEFAULTS = {
  /** Where the agent serves and the plugin connects (`ipam.agent_socket`, `TIDEPOOL_AGENT_SOCKET`). */
  agentSocket: '/run/tidepool/agent.sock',
  /** Where DELs that found no agent wait for its replay (`ipam.spool_dir`, `TIDEPOOL_SPOOL_DIR`). */
  spoolDir: '/var/lib/tidepool/cni-spool',
  /** The plugin's deadlines for the agent's answer (`ipam.add_timeout_seconds`, `ipam.del_timeout_seconds`). */
  pluginAddTimeoutSeconds: 30,
  pluginDelTimeoutSeconds: 10,
  /** STATUS is short: the runtime asks often, and a slow answer is itself a sign of trouble (`ipam.status_timeout_seconds`). */
  pluginStatusTimeoutSeconds: 5,
  /**
   * The agent's deadlines for the lifecycle's answer (`TIDEPOOL_ADD_TIMEOUT`, `TIDEPOOL_DEL_TIMEOUT`): below the
   * plugin's, so the runtime sees the agent's error, which says what to check, rather than the plugin's timeout.
   */
  agentAddTimeout: '25s',
  agentDelTimeout: '8s',
  /** `TIDEPOOL_STATUS_TIMEOUT`: how long STATUS waits for Temporal's answer on the task queue's pollers. */
  agentStatusTimeout: '3s',
} as const;

/**
 * How long a lifecycle whose ADDs all failed waits for the runtime's next ADD of the pod before it ends as a
 * failed workflow: kubelet retries a sandbox with a back-off of up to 5 minutes, so the next ADD lands in the
 * same history.
 */
export const FAILED_ADD_WAIT_MS = 10 * 60_000;
