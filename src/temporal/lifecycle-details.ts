import type { LifecycleSnapshot } from '../contract/lifecycle.ts';

/**
 * What the Temporal UI shows of a pod's IP lifecycle, as Markdown, so that a person reads an IP's story there
 * without decoding a JSON payload. Pure and deterministic: the workflow calls it on every state change.
 */

/** The one-line static summary, fixed when the lifecycle starts. */
export function lifecycleSummary(namespace: string, pod: string): string {
  return `IPs of pod ${namespace}/${pod}`;
}

export interface LifecycleStart {
  namespace: string;
  pod: string;
  podUID: string;
  /** What started the lifecycle, e.g. "CNI ADD of container 3f2a1c9b0d4e on interface eth0". */
  startedBy: string;
  /** The node the starter came from: the ADD's (ipam.node_name, else the agent's) or the runtime GC's. */
  node?: string;
}

/** The static details, fixed when the lifecycle starts (its IPs are not known yet: see the current details). */
export function lifecycleStaticDetails(start: LifecycleStart): string {
  const facts: [string, string][] = [
    ['pod', `${start.namespace}/${start.pod}`],
    ['pod UID', start.podUID],
    // Where the starter (an ADD, a runtime GC) came from; the node the pod runs on is in the current details.
    ['started on node', start.node ?? '—'],
    ['started by', start.startedBy],
  ];
  return facts.map(([name, value]) => `- **${name}**: ${escape(value)}`).join('\n');
}

/** A container ID as runtimes print it: its first 12 characters. */
export const shortContainerID = (containerID: string): string => containerID.slice(0, 12);

/**
 * The current details: the state, why, and each interface's IPs with pool, gateway and container, one list item
 * per IP (the UI renders a Markdown table without cell borders or padding, so its cells ran together).
 */
export function lifecycleCurrentDetails(s: LifecycleSnapshot): string {
  const lines = [`**${s.state}**${s.lastReason ? `: ${escape(s.lastReason)}` : ''}`];
  const items = Object.entries(s.interfaces).flatMap(([name, allocation]) =>
    allocation.ips.map(
      (h) => `- **${escape(name)}**: ${escape(h.address)}, pool ${escape(h.pool)}, gateway ${escape(h.gateway ?? '—')}, container ${escape(shortContainerID(allocation.containerID))}${allocation.detachedAt !== undefined ? ' (torn down; kept for the pod\'s next sandbox)' : ''}`,
    ),
  );
  lines.push(items.length > 0 ? items.join('\n') : 'Holds no IP.');
  const facts = [
    s.podUID ? `pod UID ${s.podUID}` : undefined,
    s.node ? `node ${s.node}` : undefined,
    s.ownerKind ? `owner ${s.ownerKind} ${s.ownerName ?? ''}`.trimEnd() : undefined,
  ].filter((f) => f !== undefined);
  if (facts.length > 0) lines.push(escape(facts.join(', ')));
  if (s.ipsEverHeld.length > 0) lines.push(`IPs ever held: ${s.ipsEverHeld.join(', ')} (pools ${s.poolsEverUsed.join(', ')})`);
  if (s.checkAt !== undefined) lines.push(`Judges the pod again at ${new Date(s.checkAt).toISOString()}.`);
  return lines.join('\n\n');
}

/** Keeps text from a pod or an error message from breaking the Markdown (table cells, emphasis, HTML). */
function escape(text: string): string {
  return text.replace(/[\\|*_`<>[\]]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}
