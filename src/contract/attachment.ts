// The rules for the identifiers of one attachment, shared by tidepool-cni (which checks CNI_CONTAINERID,
// CNI_IFNAME and CNI_ARGS), the agent (which checks its requests) and the lifecycle workflow (its updates'
// validator), so that whatever the plugin sends the agent and the workflow accept. Each function says why a
// value is not valid ("is ..." / "contains ..."), or gives undefined. Pure and free of Node APIs.
import { showValue } from './values.ts';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_POD_UID_LENGTH = 128;

/** The CNI spec's rule for a container ID and a network name: alphanumeric plus "_", "." and "-", starting with a letter or digit. */
function cniIdentifierProblem(value: string, what: string): string | undefined {
  if (value === '') return 'is empty';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(value)) {
    return `has invalid characters: a ${what} starts with a letter or digit, followed by letters, digits, "_", "." or "-"`;
  }
  return undefined;
}

export function containerIDProblem(containerID: string): string | undefined {
  return cniIdentifierProblem(containerID, 'container ID');
}

/** A network configuration's `name`. */
export function networkNameProblem(name: string): string | undefined {
  return cniIdentifierProblem(name, 'network name');
}

/** A Kubernetes namespace name: a DNS-1123 label (lower-case letters, digits and "-", at most 63). */
export function namespaceNameProblem(name: string): string | undefined {
  if (name.length > 63 || !DNS_LABEL.test(name)) {
    return 'is not a Kubernetes namespace name (at most 63 lower-case letters, digits or "-", starting and ending with a letter or digit)';
  }
  return undefined;
}

/** A Kubernetes object name (a DNS-1123 subdomain): dot-separated DNS labels, at most 253. */
export const isDnsSubdomain = (name: string) => name.length <= 253 && name.split('.').every((label) => DNS_LABEL.test(label));

/** A Kubernetes pod name: a DNS-1123 subdomain (dot-separated DNS labels, at most 253). */
export function podNameProblem(name: string): string | undefined {
  if (!isDnsSubdomain(name)) {
    return 'is not a Kubernetes pod name (at most 253 lower-case letters, digits, "-" or ".", as in a DNS subdomain)';
  }
  return undefined;
}

/** A Kubernetes node name: a DNS-1123 subdomain, as a pod name. */
export function nodeNameProblem(name: string): string | undefined {
  if (!isDnsSubdomain(name)) {
    return 'is not a Kubernetes node name (at most 253 lower-case letters, digits, "-" or ".", as in a DNS subdomain)';
  }
  return undefined;
}

/** A pod UID: Kubernetes makes UUIDs; any short printable text without whitespace is taken. */
export function podUIDProblem(uid: string): string | undefined {
  if (uid === '' || uid.length > MAX_POD_UID_LENGTH || !/^[\x21-\x7e]+$/.test(uid)) {
    return `is not a pod UID (1 to ${MAX_POD_UID_LENGTH} printable ASCII characters without spaces)`;
  }
  return undefined;
}

const MAX_INTERFACE_NAME_BYTES = 15;

/**
 * Why `name` cannot be a Linux interface name (libcni's rule: at most 15 bytes, not "." or "..", no "/",
 * ":" or whitespace), or undefined when it can.
 */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (new TextEncoder().encode(name).length > MAX_INTERFACE_NAME_BYTES) return `is longer than ${MAX_INTERFACE_NAME_BYTES} bytes`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/u.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}

/** Why an allocate or release update does not name one attachment (pod UID, container, interface), or undefined. */
export function attachmentRequestProblem(request: { podUID?: unknown; containerID?: unknown; interface?: unknown }): string | undefined {
  const rules: [string, unknown, (value: string) => string | undefined][] = [
    ['podUID', request.podUID, podUIDProblem],
    ['containerID', request.containerID, containerIDProblem],
    ['interface', request.interface, interfaceNameProblem],
  ];
  const problems: string[] = [];
  for (const [field, value, problemOf] of rules) {
    const problem = typeof value === 'string' ? problemOf(value) : 'is not a string';
    if (problem) problems.push(`${field} ${showValue(value)} ${problem}`);
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}
