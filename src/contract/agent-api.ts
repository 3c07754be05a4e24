// The wire contract between tidepool-cni and the node-local tidepool agent: HTTP/1.1 with JSON bodies over
// a unix socket. tidepool-cni (a small Go program) forwards each invocation whole to AGENT_INVOKE_PATH and
// prints the answer; the agent turns it into the calls below. Both sides of each call import these types;
// nothing here runs.
import type { DefaultPools, PodIP } from './lifecycle.ts';
import type { GcAttachment } from './runtime-gc.ts';

/** tidepool-cni's one request: an invocation as the runtime made it, answered with what to print. */
export const AGENT_INVOKE_PATH = '/v1/cni/invoke';

export interface PluginInvocation {
  /** The invocation's CNI_* variables. */
  env: Record<string, string>;
  /** The network configuration the runtime passed on stdin, as it came. */
  stdin: string;
}

/** What tidepool-cni prints and exits with: the 200 answer to AGENT_INVOKE_PATH. */
export interface PluginOutput {
  stdout: string;
  /** Log lines for the runtime's log; the spec leaves stderr unstructured. */
  stderr: string;
  exitCode: 0 | 1;
}

/** The agent's calls, one per CNI command; AGENT_INVOKE_PATH makes them in-process, and each is also served on its own path. */
export const AGENT_PATHS = {
  ADD: '/v1/cni/add',
  DEL: '/v1/cni/del',
  CHECK: '/v1/cni/check',
  GC: '/v1/cni/gc',
  STATUS: '/v1/cni/status',
} as const;

/** Identifies one attachment, (containerID, interface), and the pod it belongs to. */
export interface AgentAttachment {
  containerID: string;
  interface: string;
  podNamespace: string;
  podName: string;
  podUID: string;
  infraContainerID?: string;
}

export interface AgentAddRequest extends AgentAttachment {
  netns: string;
  defaultPools: Required<DefaultPools>;
  /** The CNI network (the configuration's `name`), recorded with the IPs for the runtime's GC. */
  network?: string;
  /** The node the configuration names (`ipam.node_name`); the agent's own otherwise. */
  node?: string;
}

/** CNI GC: release this network's attachments on the node that `validAttachments` does not list. */
export interface AgentGcRequest {
  network: string;
  node?: string;
  validAttachments: GcAttachment[];
}

export type AgentDelRequest = AgentAttachment;

export interface AgentCheckRequest extends AgentAttachment {
  /** The addresses (CIDR notation) of the CHECK's prevResult. */
  ips: string[];
}

/** What the plugin's result needs of a PodIP; the pool, VLAN and routes stay in the lifecycle and the PodEndpoint. */
export type AgentIP = Pick<PodIP, 'address' | 'version' | 'gateway'>;

export interface AgentRoute {
  dst: string;
  gw?: string;
}

/** 200 answer to ADD, and what the plugin shapes its result from. DEL, CHECK and STATUS answer 200 with `{}`, GC with a RuntimeGcResult. */
export interface AgentAddResponse {
  ips: AgentIP[];
  routes: AgentRoute[];
}

/** The body of every non-200 answer; code is a CNI error code, passed through to the runtime. */
export interface AgentErrorResponse {
  code: number;
  msg: string;
  details?: string;
}
