// One run of tidepool-cni: from the CNI_* environment and stdin to what goes to stdout, stderr and the
// exit code. Every failure ends as a spec-shaped error result.
import { agentAdd, agentCheck, agentDel, agentGc, agentStatus, type AgentFailure } from './agent-client.ts';
import type { CniEnvironment } from './environment.ts';
import { parseInvocation, type Invocation } from './netconf.ts';
import { addResult, errorResult, versionResult } from './result.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import { NEWEST_CNI_VERSION, type CniError } from './spec.ts';
import { spoolDel } from './spool.ts';

export interface PluginOutput {
  stdout: string;
  /** Log lines for the runtime's log; the spec leaves stderr unstructured. */
  stderr: string;
  exitCode: 0 | 1;
}

export async function runCni(env: CniEnvironment, stdin: string): Promise<PluginOutput> {
  const parsed = parseInvocation(env, stdin);
  if (!parsed.ok) return failed(parsed.cniVersion, parsed.error);
  try {
    return await dispatch(parsed.invocation);
  } catch (error) {
    return failed(parsed.invocation.cniVersion, unexpectedError(error));
  }
}

/** The output for a failure that happened before the network configuration could be read. */
export function failedBeforeParsing(error: CniError): PluginOutput {
  return failed(NEWEST_CNI_VERSION, error);
}

export function unexpectedError(error: unknown): CniError {
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: CniErrorCode.Internal,
    msg: `tidepool-cni failed unexpectedly: ${message}`,
    details: error instanceof Error && error.stack !== undefined ? error.stack : message,
  };
}

async function dispatch(invocation: Invocation): Promise<PluginOutput> {
  switch (invocation.command) {
    case 'VERSION':
      return succeeded(versionResult(invocation.cniVersion));
    case 'GC': {
      const { cniVersion, ipam, network, validAttachments } = invocation;
      const outcome = await agentGc(
        { socketPath: ipam.agentSocket, timeoutSeconds: ipam.delTimeoutSeconds },
        { network, validAttachments, ...(ipam.nodeName ? { node: ipam.nodeName } : {}) },
      );
      if (!outcome.ok) return failed(cniVersion, outcome.failure.error);
      const { released, stale, tooYoung } = outcome.value;
      const log = `tidepool-cni: GC of network ${network}: ${stale} stale attachments, ${released.length} IPs released, ${tooYoung} too young to release\n`;
      return succeeded(undefined, log);
    }
    case 'STATUS': {
      const outcome = await agentStatus({ socketPath: invocation.ipam.agentSocket, timeoutSeconds: invocation.ipam.statusTimeoutSeconds });
      return outcome.ok ? succeeded() : failed(invocation.cniVersion, outcome.failure.error);
    }
    default:
      return dispatchAttachment(invocation);
  }
}

async function dispatchAttachment(invocation: Extract<Invocation, { command: 'ADD' | 'DEL' | 'CHECK' }>): Promise<PluginOutput> {
  const { cniVersion, containerID, interface: interfaceName, pod, ipam } = invocation;
  const attachment = { containerID, interface: interfaceName, ...pod };
  switch (invocation.command) {
    case 'ADD': {
      const outcome = await agentAdd(
        { socketPath: ipam.agentSocket, timeoutSeconds: ipam.addTimeoutSeconds },
        {
          ...attachment,
          netns: invocation.netns,
          defaultPools: { ipv4: ipam.defaultIpv4Pools, ipv6: ipam.defaultIpv6Pools },
          ...(invocation.network ? { network: invocation.network } : {}),
          ...(ipam.nodeName ? { node: ipam.nodeName } : {}),
        },
      );
      return outcome.ok ? succeeded(addResult(invocation.cniVersion, outcome.value)) : failed(cniVersion, outcome.failure.error);
    }
    case 'CHECK': {
      const outcome = await agentCheck(
        { socketPath: ipam.agentSocket, timeoutSeconds: ipam.delTimeoutSeconds },
        { ...attachment, ips: invocation.prevResultAddresses },
      );
      return outcome.ok ? succeeded() : failed(cniVersion, outcome.failure.error);
    }
    case 'DEL': {
      const endpoint = { socketPath: ipam.agentSocket, timeoutSeconds: ipam.delTimeoutSeconds };
      const outcome = await agentDel(endpoint, attachment);
      if (outcome.ok) return succeeded();
      if (!agentUnavailable(outcome.failure)) return failed(cniVersion, outcome.failure.error);
      try {
        const file = await spoolDel(ipam.spoolDir, attachment);
        const log = `tidepool-cni: ${outcome.failure.error.msg}; DEL spooled to ${file} for the agent to replay\n`;
        return succeeded(undefined, log);
      } catch (error) {
        return failed(cniVersion, {
          code: CniErrorCode.IOFailure,
          msg: `could not spool the DEL of container ${containerID} (interface ${interfaceName}) to ${ipam.spoolDir}: ${
            error instanceof Error ? error.message : String(error)
          }`,
          details:
            `the tidepool agent could not take the DEL (${outcome.failure.error.msg}), so it must be spooled for the ` +
            `agent to replay; make ${ipam.spoolDir} (ipam.spool_dir) a writable directory on this node`,
        });
      }
    }
  }
}

/** The DEL cannot be handed over now but may be later: spool it rather than fail it. */
function agentUnavailable(failure: AgentFailure): boolean {
  return (
    failure.kind === 'unreachable' ||
    failure.kind === 'timeout' ||
    (failure.kind === 'rejected' && failure.error.code === CniErrorCode.TryAgainLater)
  );
}

function succeeded(result?: object, stderr = ''): PluginOutput {
  return { stdout: result === undefined ? '' : `${JSON.stringify(result)}\n`, stderr, exitCode: 0 };
}

function failed(cniVersion: string, error: CniError): PluginOutput {
  return { stdout: `${JSON.stringify(errorResult(cniVersion, error))}\n`, stderr: '', exitCode: 1 };
}
