// The `ipam` section of the network configuration: which IPPools to draw from, where the agent and the
// spool are, and how long to wait. Pure: it throws an InvocationProblem for the CNI error to print.
import { nodeNameProblem } from '../contract/attachment.ts';
import { isObject } from '../contract/values.ts';
import { fail, show } from './invocation-problem.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import { NODE_DEFAULTS } from '../contract/defaults.ts';

export const IPAM_TYPE = 'tidepool';


export const MAX_TIMEOUT_SECONDS = 600;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** The `ipam` section of the network configuration, defaults applied. */
export interface TidepoolIpamConfig {
  defaultIpv4Pools: string[];
  defaultIpv6Pools: string[];
  agentSocket: string;
  addTimeoutSeconds: number;
  delTimeoutSeconds: number;
  statusTimeoutSeconds: number;
  spoolDir: string;
  /** The node this configuration serves (`node_name`), for an agent that serves more than one; the agent's own otherwise. */
  nodeName?: string;
}

export function parseIpamConfig(config: Record<string, unknown>): TidepoolIpamConfig {
  const ipam = config.ipam;
  const networkName = typeof config.name === 'string' ? ` of network ${show(config.name)}` : '';
  if (ipam === undefined) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      `the network configuration${networkName} has no "ipam" section`,
      `add "ipam": {"type": "${IPAM_TYPE}"} to it`,
    );
  }
  if (!isObject(ipam)) {
    fail(CniErrorCode.InvalidNetworkConfig, `"ipam" must be an object, got ${show(ipam)}`);
  }
  if (ipam.type !== IPAM_TYPE) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      `ipam.type is ${show(ipam.type)}, expected "${IPAM_TYPE}"`,
      `tidepool-cni only serves networks whose ipam.type is "${IPAM_TYPE}", the name it is installed under in ` +
        'the CNI bin directory',
    );
  }
  const nodeName = optionalNodeName(ipam, 'node_name');
  return {
    ...(nodeName === undefined ? {} : { nodeName }),
    defaultIpv4Pools: poolList(ipam, 'default_ipv4_ippool'),
    defaultIpv6Pools: poolList(ipam, 'default_ipv6_ippool'),
    agentSocket: socketPath(ipam, 'agent_socket', NODE_DEFAULTS.agentSocket),
    addTimeoutSeconds: timeoutSeconds(ipam, 'add_timeout_seconds', NODE_DEFAULTS.pluginAddTimeoutSeconds),
    delTimeoutSeconds: timeoutSeconds(ipam, 'del_timeout_seconds', NODE_DEFAULTS.pluginDelTimeoutSeconds),
    statusTimeoutSeconds: timeoutSeconds(ipam, 'status_timeout_seconds', NODE_DEFAULTS.pluginStatusTimeoutSeconds),
    spoolDir: absolutePath(ipam, 'spool_dir', NODE_DEFAULTS.spoolDir),
  };
}

function poolList(ipam: Record<string, unknown>, key: string): string[] {
  const value = ipam[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((pool) => typeof pool === 'string' && pool.trim() !== '')) {
    fail(CniErrorCode.InvalidNetworkConfig, `ipam.${key} must be a list of non-empty IPPool names, got ${show(value)}`);
  }
  return value as string[];
}

function optionalNodeName(ipam: Record<string, unknown>, key: string): string | undefined {
  const value = ipam[key];
  if (value === undefined) return undefined;
  const problem = typeof value === 'string' ? nodeNameProblem(value) : 'is not a string';
  if (problem !== undefined) fail(CniErrorCode.InvalidNetworkConfig, `ipam.${key} ${show(value)} ${problem}`);
  return value as string;
}

function absolutePath(ipam: Record<string, unknown>, key: string, fallback: string): string {
  const value = ipam[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0')) {
    fail(CniErrorCode.InvalidNetworkConfig, `ipam.${key} must be an absolute path, got ${show(value)}`);
  }
  return value;
}

function socketPath(ipam: Record<string, unknown>, key: string, fallback: string): string {
  const value = absolutePath(ipam, key, fallback);
  if (Buffer.byteLength(value) > MAX_SOCKET_PATH_BYTES) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      `ipam.${key} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a unix socket path may have, got ${show(value)}`,
    );
  }
  return value;
}

function timeoutSeconds(ipam: Record<string, unknown>, key: string, fallback: number): number {
  const value = ipam[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0 && value <= MAX_TIMEOUT_SECONDS)) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      `ipam.${key} must be a number of seconds greater than 0 and at most ${MAX_TIMEOUT_SECONDS}, got ${show(value)}`,
    );
  }
  return value;
}
