// Turns one plugin invocation (CNI_* environment and the network configuration on stdin) into a validated
// request, or into the CNI error to print. Pure: no I/O, and it never throws.
import { containerIDProblem, namespaceNameProblem, podNameProblem, podUIDProblem } from './identifiers.ts';
import { interfaceNameProblem } from './interface-name.ts';
import {
  CNI_COMMANDS,
  CniErrorCode,
  NEWEST_CNI_VERSION,
  SUPPORTED_CNI_VERSIONS,
  isSupportedCniVersion,
  supportsCheck,
  type CniCommand,
  type CniError,
  type CniVersion,
} from './spec.ts';

export const IPAM_TYPE = 'tidepool';

export const IPAM_DEFAULTS = {
  agentSocket: '/run/tidepool/agent.sock',
  addTimeoutSeconds: 30,
  delTimeoutSeconds: 10,
  spoolDir: '/var/lib/tidepool/cni-spool',
} as const;

const MAX_TIMEOUT_SECONDS = 600;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** IFNAMSIZ is 16 including the terminating NUL. */

/** The `ipam` section of the network configuration, defaults applied. */
export interface TidepoolIpamConfig {
  defaultIpv4Pools: string[];
  defaultIpv6Pools: string[];
  agentSocket: string;
  addTimeoutSeconds: number;
  delTimeoutSeconds: number;
  spoolDir: string;
}

/** The pod, from the K8S_POD_* keys of CNI_ARGS. */
export interface PodIdentity {
  podNamespace: string;
  podName: string;
  podUID: string;
  infraContainerID?: string;
}

interface AttachmentInvocation {
  cniVersion: CniVersion;
  containerID: string;
  ifName: string;
  pod: PodIdentity;
  ipam: TidepoolIpamConfig;
}

export type Invocation =
  | { command: 'VERSION'; cniVersion: string }
  | (AttachmentInvocation & { command: 'ADD'; netns: string })
  | (AttachmentInvocation & { command: 'DEL' })
  | (AttachmentInvocation & { command: 'CHECK'; netns: string; prevResultAddresses: string[] });

export type ParsedInvocation =
  { ok: true; invocation: Invocation } | { ok: false; cniVersion: string; error: CniError };

export type CniEnvironment = Readonly<Record<string, string | undefined>>;

class InvocationProblem extends Error {
  readonly error: CniError;
  constructor(error: CniError) {
    super(error.msg);
    this.error = error;
  }
}

function fail(code: number, msg: string, details?: string): never {
  throw new InvocationProblem(details === undefined ? { code, msg } : { code, msg, details });
}

export function parseInvocation(env: CniEnvironment, stdin: string): ParsedInvocation {
  const decoded = decodeNetworkConfig(stdin);
  try {
    return { ok: true, invocation: interpret(env, decoded) };
  } catch (error) {
    if (!(error instanceof InvocationProblem)) throw error;
    return { ok: false, cniVersion: errorCniVersion(decoded), error: error.error };
  }
}

type DecodedConfig = { ok: true; config: Record<string, unknown> } | { ok: false; error: CniError };

function decodeNetworkConfig(stdin: string): DecodedConfig {
  if (stdin.trim() === '') {
    return {
      ok: false,
      error: {
        code: CniErrorCode.DecodingFailure,
        msg: 'no network configuration on stdin',
        details: 'the container runtime (or the main CNI plugin) must pass the network configuration JSON on stdin',
      },
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (error) {
    return {
      ok: false,
      error: {
        code: CniErrorCode.DecodingFailure,
        msg: 'the network configuration on stdin is not valid JSON',
        details: error instanceof Error ? error.message : String(error),
      },
    };
  }
  if (!isObject(value)) {
    return {
      ok: false,
      error: {
        code: CniErrorCode.DecodingFailure,
        msg: 'the network configuration on stdin is not a JSON object',
        details: `got ${show(value)}`,
      },
    };
  }
  return { ok: true, config: value };
}

/** Errors carry the configuration's cniVersion; when there is none to echo, the newest supported one. */
function errorCniVersion(decoded: DecodedConfig): string {
  const version = decoded.ok ? decoded.config.cniVersion : undefined;
  return typeof version === 'string' && /^\d+\.\d+\.\d+$/.test(version) ? version : NEWEST_CNI_VERSION;
}

function interpret(env: CniEnvironment, decoded: DecodedConfig): Invocation {
  const command = parseCommand(env.CNI_COMMAND);
  if (command === 'VERSION') {
    // Spec 1.0.0: VERSION gets {"cniVersion": ...} on stdin and answers in that version; older runtimes
    // send nothing, and a version this plugin cannot speak is answered in the newest one.
    const requested = decoded.ok ? decoded.config.cniVersion : undefined;
    return { command, cniVersion: isSupportedCniVersion(requested) ? requested : NEWEST_CNI_VERSION };
  }
  if (!decoded.ok) throw new InvocationProblem(decoded.error);
  const config = decoded.config;
  const cniVersion = parseCniVersion(config.cniVersion);
  if (command === 'CHECK' && !supportsCheck(cniVersion)) {
    fail(
      CniErrorCode.IncompatibleVersion,
      `CHECK is not supported by CNI ${cniVersion}`,
      'CHECK was introduced in CNI spec 0.4.0; a runtime must not call CHECK for an older network configuration',
    );
  }

  const missing = ['CNI_CONTAINERID', ...(command === 'DEL' ? [] : ['CNI_NETNS']), 'CNI_IFNAME'].filter(
    (name) => !env[name],
  );
  if (missing.length > 0) {
    fail(
      CniErrorCode.InvalidEnvironment,
      `required environment variables missing: ${missing.join(', ')}`,
      `the container runtime sets CNI_CONTAINERID, CNI_IFNAME and (except for DEL) CNI_NETNS for ${command}`,
    );
  }
  const attachment: AttachmentInvocation = {
    cniVersion,
    containerID: parseContainerID(env.CNI_CONTAINERID ?? ''),
    ifName: parseInterfaceName(env.CNI_IFNAME ?? ''),
    pod: parsePodIdentity(env.CNI_ARGS ?? ''),
    ipam: parseIpamConfig(config),
  };
  const netns = env.CNI_NETNS ?? '';
  switch (command) {
    case 'ADD':
      return { command, ...attachment, netns };
    case 'DEL':
      return { command, ...attachment };
    case 'CHECK':
      return { command, ...attachment, netns, prevResultAddresses: parsePrevResultAddresses(config.prevResult) };
  }
}

function parseCommand(value: string | undefined): CniCommand {
  if (!value) {
    fail(
      CniErrorCode.InvalidEnvironment,
      'CNI_COMMAND is not set',
      'tidepool-cni is a CNI IPAM plugin: the container runtime, or the main CNI plugin that delegates IPAM to it, ' +
        `runs it with CNI_COMMAND set to one of ${CNI_COMMANDS.join(', ')}`,
    );
  }
  if (!(CNI_COMMANDS as readonly string[]).includes(value)) {
    fail(
      CniErrorCode.InvalidEnvironment,
      `unknown CNI_COMMAND ${show(value)}`,
      `expected one of ${CNI_COMMANDS.join(', ')}`,
    );
  }
  return value as CniCommand;
}

function parseCniVersion(value: unknown): CniVersion {
  if (isSupportedCniVersion(value)) return value;
  const supported = SUPPORTED_CNI_VERSIONS.join(', ');
  fail(
    CniErrorCode.IncompatibleVersion,
    'incompatible CNI version',
    value === undefined
      ? `the network configuration has no cniVersion; tidepool-cni supports ${supported}`
      : `the network configuration's cniVersion is ${show(value)}; tidepool-cni supports ${supported}`,
  );
}

function parseContainerID(containerID: string): string {
  if (containerIDProblem(containerID) !== undefined) {
    fail(
      CniErrorCode.InvalidEnvironment,
      `CNI_CONTAINERID ${show(containerID)} has invalid characters`,
      'a container ID starts with a letter or digit, followed by letters, digits, "_", "." or "-"',
    );
  }
  return containerID;
}

function parseInterfaceName(ifName: string): string {
  const problem = interfaceNameProblem(ifName);
  if (problem !== undefined) {
    fail(CniErrorCode.InvalidEnvironment, `CNI_IFNAME ${show(ifName)} is not a valid interface name: it ${problem}`);
  }
  return ifName;
}

const POD_KEYS = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID'] as const;
const POD_KEY_RULES: Record<(typeof POD_KEYS)[number], (value: string) => string | undefined> = {
  K8S_POD_NAMESPACE: namespaceNameProblem,
  K8S_POD_NAME: podNameProblem,
  K8S_POD_UID: podUIDProblem,
};

/** CNI_ARGS is `KEY=VALUE` pairs separated by ";" (e.g. `IgnoreUnknown=1;K8S_POD_NAME=web-0`). */
function parseCniArgs(cniArgs: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const pair of cniArgs.split(';')) {
    if (pair === '') continue;
    const separator = pair.indexOf('=');
    if (separator <= 0) {
      fail(
        CniErrorCode.InvalidEnvironment,
        `CNI_ARGS has a malformed pair ${show(pair)}`,
        'CNI_ARGS must be KEY=VALUE pairs separated by ";"',
      );
    }
    args.set(pair.slice(0, separator), pair.slice(separator + 1));
  }
  return args;
}

function parsePodIdentity(cniArgs: string): PodIdentity {
  const args = parseCniArgs(cniArgs);
  const missing = POD_KEYS.filter((key) => !args.get(key));
  if (missing.length > 0) {
    fail(
      CniErrorCode.InvalidEnvironment,
      `CNI_ARGS lacks ${missing.join(', ')}`,
      `tidepool serves Kubernetes pods only and needs ${POD_KEYS.join(', ')} in CNI_ARGS: the container runtime ` +
        '(containerd, CRI-O) sets them for pod sandboxes created by the kubelet, and Multus passes them on to ' +
        `delegated plugins. CNI_ARGS was ${show(cniArgs)}`,
    );
  }
  for (const key of POD_KEYS) {
    const problem = POD_KEY_RULES[key](args.get(key) ?? '');
    if (problem !== undefined) fail(CniErrorCode.InvalidEnvironment, `CNI_ARGS ${key} ${show(args.get(key))} ${problem}`);
  }
  const pod: PodIdentity = {
    podNamespace: args.get('K8S_POD_NAMESPACE') ?? '',
    podName: args.get('K8S_POD_NAME') ?? '',
    podUID: args.get('K8S_POD_UID') ?? '',
  };
  const infraContainerID = args.get('K8S_POD_INFRA_CONTAINER_ID');
  if (infraContainerID) pod.infraContainerID = infraContainerID;
  return pod;
}

function parseIpamConfig(config: Record<string, unknown>): TidepoolIpamConfig {
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
  return {
    defaultIpv4Pools: poolList(ipam, 'default_ipv4_ippool'),
    defaultIpv6Pools: poolList(ipam, 'default_ipv6_ippool'),
    agentSocket: socketPath(ipam, 'agent_socket', IPAM_DEFAULTS.agentSocket),
    addTimeoutSeconds: timeoutSeconds(ipam, 'add_timeout_seconds', IPAM_DEFAULTS.addTimeoutSeconds),
    delTimeoutSeconds: timeoutSeconds(ipam, 'del_timeout_seconds', IPAM_DEFAULTS.delTimeoutSeconds),
    spoolDir: absolutePath(ipam, 'spool_dir', IPAM_DEFAULTS.spoolDir),
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

function parsePrevResultAddresses(prevResult: unknown): string[] {
  if (prevResult === undefined) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      'CHECK needs prevResult in the network configuration',
      'the runtime must pass the result of the preceding ADD as prevResult when it calls CHECK',
    );
  }
  if (!isObject(prevResult)) {
    fail(CniErrorCode.InvalidNetworkConfig, `prevResult must be an object, got ${show(prevResult)}`);
  }
  const ips = prevResult.ips ?? [];
  if (!Array.isArray(ips)) fail(CniErrorCode.InvalidNetworkConfig, `prevResult.ips must be a list, got ${show(ips)}`);
  return ips.map((entry: unknown, index) => {
    const address = isObject(entry) ? entry.address : undefined;
    if (typeof address !== 'string' || !address.includes('/')) {
      fail(
        CniErrorCode.InvalidNetworkConfig,
        `prevResult.ips[${index}].address must be an address in CIDR notation, got ${show(address)}`,
      );
    }
    return address;
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value as JSON for an error message, cut short so one bad field cannot flood the runtime's log. */
function show(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
