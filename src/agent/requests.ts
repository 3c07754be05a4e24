// The shape of the agent API's request bodies (src/contract/agent-api.ts), checked before anything reaches
// Temporal, so that a malformed request is refused with a clear CNI error and starts no lifecycle. Pure.
import { AGENT_PATHS } from '../contract/agent-api.ts';
import { isObject, showValue } from '../contract/values.ts';
import { containerIDProblem, namespaceNameProblem, podNameProblem, podUIDProblem } from '../contract/attachment.ts';
import { interfaceNameProblem } from '../contract/attachment.ts';

const isPoolList = (value: unknown) =>
  Array.isArray(value) && value.every((pool) => typeof pool === 'string' && pool.trim() !== '');

/** Why `body` does not name one attachment (container, interface, pod) as the plugin sends it, or undefined. */
export function attachmentProblem(body: unknown): string | undefined {
  if (!isObject(body)) return `the request body must be a JSON object, got ${showValue(body)}`;
  const rules: [string, (value: string) => string | undefined][] = [
    ['containerID', containerIDProblem],
    ['interface', interfaceNameProblem],
    ['podNamespace', namespaceNameProblem],
    ['podName', podNameProblem],
    ['podUID', podUIDProblem],
  ];
  for (const [field, problemOf] of rules) {
    const value = body[field];
    if (typeof value !== 'string') return `"${field}" must be a string, got ${showValue(value)}`;
    const problem = problemOf(value);
    if (problem) return `"${field}" ${showValue(value)} ${problem}`;
  }
  if (body.infraContainerID !== undefined && typeof body.infraContainerID !== 'string') {
    return `"infraContainerID" must be a string, got ${showValue(body.infraContainerID)}`;
  }
  return undefined;
}

/** Why `body` is not a valid request for the endpoint at `path`, or undefined when it is. */
export function agentRequestProblem(path: string, body: unknown): string | undefined {
  const problem = attachmentProblem(body);
  if (problem !== undefined || !isObject(body)) return problem;
  if (path === AGENT_PATHS.ADD) {
    if (typeof body.netns !== 'string') return `"netns" must be a string, got ${showValue(body.netns)}`;
    const pools = body.defaultPools;
    if (pools !== undefined && !(isObject(pools) && isPoolList(pools.ipv4 ?? []) && isPoolList(pools.ipv6 ?? []))) {
      return `"defaultPools" must be {"ipv4": [...], "ipv6": [...]} with non-empty IPPool names, got ${showValue(pools)}`;
    }
  }
  if (path === AGENT_PATHS.CHECK && body.ips !== undefined) {
    if (!Array.isArray(body.ips) || !body.ips.every((ip) => typeof ip === 'string')) {
      return `"ips" must be a list of addresses in CIDR notation, got ${showValue(body.ips)}`;
    }
  }
  return undefined;
}
