// The shape of the agent API's request bodies (src/contract/agent-api.ts), checked before anything reaches
// Temporal, so that a malformed request is refused with a clear CNI error and starts no lifecycle. Pure.
import { AGENT_PATHS } from '../contract/agent-api.ts';
import { isObject, showValue } from '../contract/values.ts';
import {
  containerIDProblem,
  interfaceNameProblem,
  namespaceNameProblem,
  networkNameProblem,
  nodeNameProblem,
  podNameProblem,
  podUIDProblem,
} from '../contract/attachment.ts';

type Rule = (value: string) => string | undefined;

const isPoolList = (value: unknown) =>
  Array.isArray(value) && value.every((pool) => typeof pool === 'string' && pool.trim() !== '');

/** Why `body` does not name one attachment (container, interface, pod) as the plugin sends it, or undefined. */
export function attachmentProblem(body: unknown): string | undefined {
  if (!isObject(body)) return `the request body must be a JSON object, got ${showValue(body)}`;
  const problem = fieldsProblem(body, [
    ['containerID', containerIDProblem],
    ['interface', interfaceNameProblem],
    ['podNamespace', namespaceNameProblem],
    ['podName', podNameProblem],
    ['podUID', podUIDProblem],
  ]);
  if (problem !== undefined) return problem;
  if (body.infraContainerID !== undefined && typeof body.infraContainerID !== 'string') {
    return `"infraContainerID" must be a string, got ${showValue(body.infraContainerID)}`;
  }
  return undefined;
}

/** The first field of `body` that is not a string its rule takes; an optional field may be absent. */
function fieldsProblem(body: Record<string, unknown>, rules: [string, Rule, 'optional'?][]): string | undefined {
  for (const [field, problemOf, optional] of rules) {
    const value = body[field];
    if (value === undefined && optional) continue;
    if (typeof value !== 'string') return `"${field}" must be a string, got ${showValue(value)}`;
    const problem = problemOf(value);
    if (problem) return `"${field}" ${showValue(value)} ${problem}`;
  }
  return undefined;
}

/** Why a GC body is not `{network, node?, validAttachments: [{containerID, interface}]}`, or undefined. */
function gcRequestProblem(body: unknown): string | undefined {
  if (!isObject(body)) return `the request body must be a JSON object, got ${showValue(body)}`;
  const problem = fieldsProblem(body, [
    ['network', networkNameProblem],
    ['node', nodeNameProblem, 'optional'],
  ]);
  if (problem !== undefined) return problem;
  if (!Array.isArray(body.validAttachments)) return `"validAttachments" must be a list, got ${showValue(body.validAttachments)}`;
  for (const [index, entry] of body.validAttachments.entries()) {
    const entryProblem = isObject(entry)
      ? fieldsProblem(entry, [
          ['containerID', containerIDProblem],
          ['interface', interfaceNameProblem],
        ])
      : `must be an object, got ${showValue(entry)}`;
    if (entryProblem !== undefined) return `validAttachments[${index}]: ${entryProblem}`;
  }
  return undefined;
}

/** Why `body` is not a valid request for the endpoint at `path`, or undefined when it is. */
export function agentRequestProblem(path: string, body: unknown): string | undefined {
  if (path === AGENT_PATHS.STATUS) return isObject(body) ? undefined : `the request body must be a JSON object, got ${showValue(body)}`;
  if (path === AGENT_PATHS.GC) return gcRequestProblem(body);
  const problem = attachmentProblem(body);
  if (problem !== undefined || !isObject(body)) return problem;
  if (path === AGENT_PATHS.ADD) {
    const placement = fieldsProblem(body, [
      ['network', networkNameProblem, 'optional'],
      ['node', nodeNameProblem, 'optional'],
    ]);
    if (placement !== undefined) return placement;
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
