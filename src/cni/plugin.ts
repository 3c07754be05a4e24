// One CNI invocation, in the agent: from the CNI_* environment and stdin that tidepool-cni forwarded to what
// tidepool-cni prints on stdout and stderr and its exit code. Every failure ends as a spec-shaped error result.
import type {
  PluginOutput,
  AgentAddRequest,
  AgentAddResponse,
  AgentCheckRequest,
  AgentDelRequest,
  AgentGcRequest,
} from '../contract/agent-api.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import type { RuntimeGcResult } from '../contract/runtime-gc.ts';
import type { CniEnvironment } from './environment.ts';
import { parseInvocation, type Invocation } from './netconf.ts';
import { addResult, errorResult, versionResult } from './result.ts';
import type { CniError } from './spec.ts';

/** An agent call's answer: its value, or the CNI error the agent refused it with. */
export type AgentOutcome<T> = { ok: true; value: T } | { ok: false; error: CniError };

/** What an invocation asks of the node agent, one call per CNI command. */
export interface AgentCalls {
  add(request: AgentAddRequest): Promise<AgentOutcome<AgentAddResponse>>;
  del(request: AgentDelRequest): Promise<AgentOutcome<void>>;
  check(request: AgentCheckRequest): Promise<AgentOutcome<void>>;
  gc(request: AgentGcRequest): Promise<AgentOutcome<RuntimeGcResult>>;
  status(): Promise<AgentOutcome<void>>;
}

export async function runCni(env: CniEnvironment, stdin: string, agent: AgentCalls): Promise<PluginOutput> {
  const parsed = parseInvocation(env, stdin);
  if (!parsed.ok) return failed(parsed.cniVersion, parsed.error);
  try {
    return await dispatch(parsed.invocation, agent);
  } catch (error) {
    return failed(parsed.invocation.cniVersion, unexpectedError(error));
  }
}

function unexpectedError(error: unknown): CniError {
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: CniErrorCode.Internal,
    msg: `tidepool-cni failed unexpectedly: ${message}`,
    details: error instanceof Error && error.stack !== undefined ? error.stack : message,
  };
}

async function dispatch(invocation: Invocation, agent: AgentCalls): Promise<PluginOutput> {
  switch (invocation.command) {
    case 'VERSION':
      return succeeded(versionResult(invocation.cniVersion));
    case 'GC': {
      const { cniVersion, ipam, network, validAttachments } = invocation;
      const outcome = await agent.gc({ network, validAttachments, ...(ipam.nodeName ? { node: ipam.nodeName } : {}) });
      if (!outcome.ok) return failed(cniVersion, outcome.error);
      const { released, stale, tooYoung } = outcome.value;
      const log = `tidepool-cni: GC of network ${network}: ${stale} stale attachments, ${released.length} IPs released, ${tooYoung} too young to release\n`;
      return succeeded(undefined, log);
    }
    case 'STATUS': {
      const outcome = await agent.status();
      return outcome.ok ? succeeded() : failed(invocation.cniVersion, outcome.error);
    }
    default:
      return dispatchAttachment(invocation, agent);
  }
}

async function dispatchAttachment(
  invocation: Extract<Invocation, { command: 'ADD' | 'DEL' | 'CHECK' }>,
  agent: AgentCalls,
): Promise<PluginOutput> {
  const { cniVersion, containerID, interface: interfaceName, pod, ipam } = invocation;
  const attachment = { containerID, interface: interfaceName, ...pod };
  switch (invocation.command) {
    case 'ADD': {
      const outcome = await agent.add({
        ...attachment,
        netns: invocation.netns,
        defaultPools: { ipv4: ipam.defaultIpv4Pools, ipv6: ipam.defaultIpv6Pools },
        ...(invocation.network ? { network: invocation.network } : {}),
        ...(ipam.nodeName ? { node: ipam.nodeName } : {}),
      });
      return outcome.ok ? succeeded(addResult(invocation.cniVersion, outcome.value)) : failed(cniVersion, outcome.error);
    }
    case 'CHECK': {
      const outcome = await agent.check({ ...attachment, ips: invocation.prevResultAddresses });
      return outcome.ok ? succeeded() : failed(cniVersion, outcome.error);
    }
    case 'DEL': {
      const outcome = await agent.del(attachment);
      return outcome.ok ? succeeded() : failed(cniVersion, outcome.error);
    }
  }
}

function succeeded(result?: object, stderr = ''): PluginOutput {
  return { stdout: result === undefined ? '' : `${JSON.stringify(result)}\n`, stderr, exitCode: 0 };
}

function failed(cniVersion: string, error: CniError): PluginOutput {
  return { stdout: `${JSON.stringify(errorResult(cniVersion, error))}\n`, stderr: '', exitCode: 1 };
}
