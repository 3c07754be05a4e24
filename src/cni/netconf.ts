// Turns one plugin invocation (CNI_* environment and the network configuration on stdin) into a validated
// request, or into the CNI error to print. Pure: no I/O, and it never throws.
import { containerIDProblem, interfaceNameProblem, networkNameProblem } from '../contract/attachment.ts';
import type { GcAttachment } from '../contract/runtime-gc.ts';
import { parseAttachmentEnvironment, parseCommand, type AttachmentCommand, type CniEnvironment, type PodIdentity } from './environment.ts';
import { isObject } from '../contract/values.ts';
import { InvocationProblem, fail, show } from './invocation-problem.ts';
import { parseIpamConfig, type TidepoolIpamConfig } from './ipam-config.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import {
  NEWEST_CNI_VERSION,
  SUPPORTED_CNI_VERSIONS,
  VALID_ATTACHMENTS_KEY,
  isSupportedCniVersion,
  negotiateCniVersion,
  supportsCheck,
  supportsGcAndStatus,
  type CniError,
  type CniVersion,
} from './spec.ts';

interface AttachmentInvocation {
  containerID: string;
  interface: string;
  pod: PodIdentity;
  ipam: TidepoolIpamConfig;
}

export type Invocation =
  | { command: 'VERSION'; cniVersion: string }
  | (AttachmentInvocation & { command: 'ADD'; cniVersion: CniVersion; netns: string; network?: string })
  /** A DEL is taken whatever its version, so its cniVersion is the configuration's own when Tidepool does not speak it. */
  | (AttachmentInvocation & { command: 'DEL'; cniVersion: string })
  | (AttachmentInvocation & { command: 'CHECK'; cniVersion: CniVersion; netns: string; prevResultAddresses: string[] })
  | { command: 'GC'; cniVersion: CniVersion; network: string; ipam: TidepoolIpamConfig; validAttachments: GcAttachment[] }
  | { command: 'STATUS'; cniVersion: CniVersion; ipam: TidepoolIpamConfig };

export type ParsedInvocation =
  { ok: true; invocation: Invocation } | { ok: false; cniVersion: string; error: CniError };

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
  const negotiated = negotiateCniVersion(config.cniVersion, config.cniVersions);
  if (command === 'DEL') {
    // Refusing a DEL for its version alone would leak what an ADD of that version allocated.
    return { command, cniVersion: negotiated ?? errorCniVersion(decoded), ...attachmentOf(env, command, config).attachment };
  }
  const cniVersion = negotiated ?? incompatibleVersion(config);
  if (command === 'CHECK' && !supportsCheck(cniVersion)) {
    fail(
      CniErrorCode.IncompatibleVersion,
      `CHECK is not supported by CNI ${cniVersion}`,
      'CHECK was introduced in CNI spec 0.4.0; a runtime must not call CHECK for an older network configuration',
    );
  }
  if ((command === 'GC' || command === 'STATUS') && !supportsGcAndStatus(cniVersion)) {
    fail(
      CniErrorCode.IncompatibleVersion,
      `${command} is not supported by CNI ${cniVersion}`,
      `${command} was introduced in CNI spec 1.1.0; a runtime must not call it for an older network configuration`,
    );
  }
  switch (command) {
    case 'ADD': {
      const network = config.name === undefined ? {} : { network: networkName(config) };
      const { attachment, netns } = attachmentOf(env, command, config);
      return { command, cniVersion, ...attachment, netns, ...network };
    }
    case 'CHECK': {
      const { attachment, netns } = attachmentOf(env, command, config);
      return { command, cniVersion, ...attachment, netns, prevResultAddresses: parsePrevResultAddresses(config.prevResult) };
    }
    case 'GC':
      return {
        command,
        cniVersion,
        network: networkName(config),
        ipam: parseIpamConfig(config),
        validAttachments: parseValidAttachments(config[VALID_ATTACHMENTS_KEY]),
      };
    case 'STATUS':
      return { command, cniVersion, ipam: parseIpamConfig(config) };
  }
}

function attachmentOf(env: CniEnvironment, command: AttachmentCommand, config: Record<string, unknown>): { attachment: AttachmentInvocation; netns: string } {
  const { netns, ...identity } = parseAttachmentEnvironment(env, command);
  return { attachment: { ...identity, ipam: parseIpamConfig(config) }, netns };
}

function incompatibleVersion(config: Record<string, unknown>): never {
  const supported = SUPPORTED_CNI_VERSIONS.join(', ');
  const offered =
    config.cniVersions !== undefined
      ? `cniVersion ${show(config.cniVersion)} and cniVersions ${show(config.cniVersions)}`
      : config.cniVersion === undefined
        ? 'no cniVersion'
        : `cniVersion ${show(config.cniVersion)}`;
  fail(CniErrorCode.IncompatibleVersion, 'incompatible CNI version', `the network configuration has ${offered}; tidepool-cni supports ${supported}`);
}

/** The configuration's `name`, recorded with an ADD's IPs; GC frees what is not listed, so it needs the network it is for. */
function networkName(config: Record<string, unknown>): string {
  const problem = fieldProblem('name', config.name, networkNameProblem);
  if (problem !== undefined) fail(CniErrorCode.InvalidNetworkConfig, `the network configuration's ${problem}`, `got ${show(config.name)}`);
  return config.name as string;
}

/** `cni.dev/valid-attachments`: `[{"containerID": ..., "ifname": ...}]`. Required: an absent list would free every attachment. */
function parseValidAttachments(value: unknown): GcAttachment[] {
  if (!Array.isArray(value)) {
    fail(
      CniErrorCode.InvalidNetworkConfig,
      `GC needs ${VALID_ATTACHMENTS_KEY} as a list, got ${show(value)}`,
      'the runtime lists the attachments it still has as [{"containerID": ..., "ifname": ...}]; Tidepool frees the rest',
    );
  }
  return value.map((entry: unknown, index) => {
    const { containerID, ifname } = isObject(entry) ? entry : {};
    const problems = [
      fieldProblem('containerID', containerID, containerIDProblem),
      fieldProblem('ifname', ifname, interfaceNameProblem),
    ].filter((problem) => problem !== undefined);
    if (problems.length > 0) {
      fail(CniErrorCode.InvalidNetworkConfig, `${VALID_ATTACHMENTS_KEY}[${index}] ${show(entry)}: ${problems.join('; ')}`);
    }
    return { containerID: containerID as string, interface: ifname as string };
  });
}

function fieldProblem(name: string, value: unknown, rule: (value: string) => string | undefined): string | undefined {
  if (typeof value !== 'string') return `${name} is not a string`;
  const problem = rule(value);
  return problem === undefined ? undefined : `${name} ${problem}`;
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
