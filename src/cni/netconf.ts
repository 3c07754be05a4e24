// Turns one plugin invocation (CNI_* environment and the network configuration on stdin) into a validated
// request, or into the CNI error to print. Pure: no I/O, and it never throws.
import { parseAttachmentEnvironment, parseCommand, type CniEnvironment, type PodIdentity } from './environment.ts';
import { isObject } from '../contract/values.ts';
import { InvocationProblem, fail, show } from './invocation-problem.ts';
import { parseIpamConfig, type TidepoolIpamConfig } from './ipam-config.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import {
  NEWEST_CNI_VERSION,
  SUPPORTED_CNI_VERSIONS,
  isSupportedCniVersion,
  supportsCheck,
  type CniError,
  type CniVersion,
} from './spec.ts';

interface AttachmentInvocation {
  cniVersion: CniVersion;
  containerID: string;
  interface: string;
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

  const { netns, ...identity } = parseAttachmentEnvironment(env, command);
  const attachment: AttachmentInvocation = { cniVersion, ...identity, ipam: parseIpamConfig(config) };
  switch (command) {
    case 'ADD':
      return { command, ...attachment, netns };
    case 'DEL':
      return { command, ...attachment };
    case 'CHECK':
      return { command, ...attachment, netns, prevResultAddresses: parsePrevResultAddresses(config.prevResult) };
  }
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
