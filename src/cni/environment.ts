// The CNI_* environment of one plugin invocation: the command, the attachment's variables and the pod
// from CNI_ARGS. Pure: it throws an InvocationProblem for the CNI error to print.
import { containerIDProblem, namespaceNameProblem, podNameProblem, podUIDProblem } from '../contract/attachment.ts';
import { interfaceNameProblem } from '../contract/attachment.ts';
import { fail, show } from './invocation-problem.ts';
import { CniErrorCode } from '../contract/cni-codes.ts';
import { CNI_COMMANDS, type CniCommand } from './spec.ts';

export type CniEnvironment = Readonly<Record<string, string | undefined>>;

/** The pod, from the K8S_POD_* keys of CNI_ARGS. */
export interface PodIdentity {
  podNamespace: string;
  podName: string;
  podUID: string;
  infraContainerID?: string;
}

/** What the environment says about the attachment of an ADD, DEL or CHECK. */
export interface AttachmentEnvironment {
  containerID: string;
  interface: string;
  pod: PodIdentity;
  netns: string;
}

export function parseCommand(value: string | undefined): CniCommand {
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

/** The commands that act on one attachment; GC and STATUS act on the network, VERSION on nothing. */
export type AttachmentCommand = Extract<CniCommand, 'ADD' | 'DEL' | 'CHECK'>;

export function parseAttachmentEnvironment(env: CniEnvironment, command: AttachmentCommand): AttachmentEnvironment {
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
  return {
    containerID: parseContainerID(env.CNI_CONTAINERID ?? ''),
    interface: parseInterfaceName(env.CNI_IFNAME ?? ''),
    pod: parsePodIdentity(env.CNI_ARGS ?? ''),
    netns: env.CNI_NETNS ?? '',
  };
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

function parseInterfaceName(interfaceName: string): string {
  const problem = interfaceNameProblem(interfaceName);
  if (problem !== undefined) {
    fail(CniErrorCode.InvalidEnvironment, `CNI_IFNAME ${show(interfaceName)} is not a valid interface name: it ${problem}`);
  }
  return interfaceName;
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
