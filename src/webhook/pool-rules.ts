import { isDeepStrictEqual } from 'node:util';
import type { Family } from '../contract/lifecycle.ts';
import { formatIP, IPAMInputError, parseIP, parseSubnet } from '../ipam/ip.ts';
import { IPSet } from '../ipam/ranges.ts';
import type { IPPool, IPPoolSpec, ReservedIP } from '../k8s/types.ts';
import { IP_PROTECTION_FINALIZER } from '../k8s/types.ts';

/** A JSON patch operation, as a mutating admission response carries it. */
export interface PatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}

const show = (value: unknown) => JSON.stringify(value);

function setOf(family: Family, entries: readonly string[] | undefined, field: string, problems: string[]): IPSet {
  try {
    return IPSet.parse(family, entries ?? [], field);
  } catch (error) {
    if (!(error instanceof IPAMInputError)) throw error;
    problems.push(error.message);
    return IPSet.empty(family);
  }
}

/**
 * The mutating webhook's changes to a new or updated IPPool: the ip-protection finalizer (on create),
 * spec.ipVersion from the subnet, and spec.ips / spec.excludeIPs normalised (merged, sorted, canonical).
 * Returns no operations for a pool it cannot parse: validation then says what is wrong.
 */
export function poolMutations(pool: IPPool, creating: boolean): PatchOperation[] {
  const operations: PatchOperation[] = [];
  // A terminating pool's spec is frozen; a default added now would make its finalizer's removal a refused spec change.
  if (pool.metadata.deletionTimestamp) return operations;
  if (creating && !(pool.metadata.finalizers ?? []).includes(IP_PROTECTION_FINALIZER)) {
    operations.push(
      pool.metadata.finalizers
        ? { op: 'add', path: '/metadata/finalizers/-', value: IP_PROTECTION_FINALIZER }
        : { op: 'add', path: '/metadata/finalizers', value: [IP_PROTECTION_FINALIZER] },
    );
  }
  let family: Family;
  try {
    family = parseSubnet(pool.spec.subnet).family;
  } catch {
    return operations;
  }
  if (pool.spec.ipVersion === undefined) operations.push({ op: 'add', path: '/spec/ipVersion', value: family });
  for (const field of ['ips', 'excludeIPs'] as const) {
    const entries = pool.spec[field];
    if (!entries) continue;
    try {
      const normalised = IPSet.parse(family, entries, `spec.${field}`).toStrings();
      if (show(normalised) !== show(entries)) operations.push({ op: 'replace', path: `/spec/${field}`, value: normalised });
    } catch {
      // validation reports it
    }
  }
  return operations;
}

/** What must hold for any IPPool spec on its own. Every message names the field and the value. */
export function specProblems(spec: IPPoolSpec): string[] {
  const problems: string[] = [];
  let subnet;
  try {
    subnet = parseSubnet(spec.subnet);
  } catch (error) {
    return [`spec.subnet: ${(error as Error).message}`];
  }
  const family = subnet.family;
  if (spec.ipVersion !== undefined && spec.ipVersion !== family) {
    problems.push(`spec.ipVersion: ${spec.ipVersion} does not match spec.subnet ${spec.subnet}, which is IPv${family}`);
  }
  const inside = IPSet.fromIntervals(family, [{ start: subnet.first, end: subnet.last }]);
  const ips = setOf(family, spec.ips, 'spec.ips', problems);
  const excluded = setOf(family, spec.excludeIPs, 'spec.excludeIPs', problems);
  for (const [field, set] of [['spec.ips', ips], ['spec.excludeIPs', excluded]] as const) {
    const outside = set.subtract(inside);
    if (!outside.isEmpty) problems.push(`${field}: ${outside.toStrings().join(', ')} outside spec.subnet ${spec.subnet}`);
  }
  if (spec.gateway !== undefined) {
    try {
      const gateway = parseIP(spec.gateway);
      if (gateway.family !== family || !inside.has(gateway.value)) {
        problems.push(`spec.gateway: ${spec.gateway} is outside spec.subnet ${spec.subnet}`);
      } else if (ips.subtract(excluded).has(gateway.value)) {
        problems.push(
          `spec.gateway: ${spec.gateway} is also in spec.ips; the gateway is never allocated, so remove it from spec.ips or add it to spec.excludeIPs`,
        );
      }
    } catch (error) {
      problems.push(`spec.gateway: ${(error as Error).message}`);
    }
  }
  if (spec.defaultRoute === true && spec.gateway === undefined) {
    problems.push('spec.defaultRoute: a default route needs spec.gateway, the router it goes through');
  }
  const destinations = new Set<string>();
  for (const [index, route] of (spec.routes ?? []).entries()) {
    const at = `spec.routes[${index}]`;
    try {
      const dst = parseSubnet(route.dst);
      if (dst.family !== family) problems.push(`${at}.dst: ${route.dst} is not IPv${family}`);
      if (dst.prefix === 0) problems.push(`${at}.dst: ${route.dst} is a default route; spec.gateway gives the default route (unless spec.defaultRoute is false)`);
      const key = `${formatIP(dst.family, dst.first)}/${dst.prefix}`;
      if (destinations.has(key)) problems.push(`${at}.dst: ${route.dst} appears twice`);
      destinations.add(key);
    } catch (error) {
      problems.push(`${at}.dst: ${(error as Error).message}`);
    }
    try {
      const gw = parseIP(route.gw);
      if (gw.family !== family || !inside.has(gw.value)) problems.push(`${at}.gw: ${route.gw} is outside spec.subnet ${spec.subnet}`);
    } catch (error) {
      problems.push(`${at}.gw: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * What must hold between a pool and the other pools: subnets either identical or disjoint, and pools of the
 * same subnet without a shared IP.
 */
export function overlapProblems(pool: IPPool, others: readonly IPPool[]): string[] {
  const problems: string[] = [];
  let subnet;
  try {
    subnet = parseSubnet(pool.spec.subnet);
  } catch {
    return problems;
  }
  const mine = setOf(subnet.family, pool.spec.ips, 'spec.ips', []);
  for (const other of others) {
    if (other.metadata.name === pool.metadata.name) continue;
    let theirs;
    try {
      theirs = parseSubnet(other.spec.subnet);
    } catch {
      continue;
    }
    if (theirs.family !== subnet.family) continue;
    const same = theirs.first === subnet.first && theirs.last === subnet.last;
    if (!same && theirs.first <= subnet.last && subnet.first <= theirs.last) {
      problems.push(`spec.subnet: ${pool.spec.subnet} overlaps IPPool ${other.metadata.name}'s subnet ${other.spec.subnet}`);
      continue;
    }
    if (same) {
      const shared = mine.intersect(setOf(theirs.family, other.spec.ips, 'spec.ips', []));
      if (!shared.isEmpty) problems.push(`spec.ips: ${shared.toStrings().join(', ')} also in IPPool ${other.metadata.name}`);
    }
  }
  return problems;
}

/**
 * An update's own rules: subnet and ipVersion immutable, no allocated IP removed, no spec change while
 * terminating (metadata still changes, so the pool-deletion workflow can remove the finalizer).
 */
export function updateProblems(old: IPPool, updated: IPPool): string[] {
  if (old.metadata.deletionTimestamp) {
    return isDeepStrictEqual(old.spec, updated.spec) ? [] : [`IPPool ${old.metadata.name} is being deleted; its spec cannot change (its status still can)`];
  }
  const problems: string[] = [];
  if (updated.spec.subnet !== old.spec.subnet) problems.push(`spec.subnet: immutable, cannot change from ${old.spec.subnet} to ${updated.spec.subnet}`);
  if (old.spec.ipVersion !== undefined && updated.spec.ipVersion !== old.spec.ipVersion) {
    problems.push(`spec.ipVersion: immutable, cannot change from ${old.spec.ipVersion} to ${show(updated.spec.ipVersion)}`);
  }
  let family: Family;
  try {
    family = parseSubnet(updated.spec.subnet).family;
  } catch {
    return problems;
  }
  const allocatable = setOf(family, updated.spec.ips, 'spec.ips', []).subtract(setOf(family, updated.spec.excludeIPs, 'spec.excludeIPs', []));
  const lost = Object.entries(old.status?.allocatedIPs ?? {}).filter(([ip]) => {
    try {
      return !allocatable.has(parseIP(ip).value);
    } catch {
      return false;
    }
  });
  if (lost.length > 0) {
    problems.push(`spec.ips: the update removes allocated IPs: ${lost.map(([ip, record]) => `${ip} (held by ${record.pod})`).join(', ')}`);
  }
  return problems;
}

/** Whether a DELETE is refused: it is while the pool holds allocated IPs, unless the switch is off. */
export function deleteProblem(pool: IPPool, refuseWithAllocatedIPs: boolean, shown = 5): string | undefined {
  const records = Object.entries(pool.status?.allocatedIPs ?? {});
  if (!refuseWithAllocatedIPs || records.length === 0) return undefined;
  const first = records.slice(0, shown).map(([ip, record]) => `${ip} (${record.pod})`);
  return `IPPool ${pool.metadata.name} has ${records.length} allocated IP${records.length > 1 ? 's' : ''}, first ${first.join(', ')}; delete or move those pods first`;
}

/** A ReservedIP's entries must be IPs or ranges of one family, matching spec.ipVersion when it is set. */
export function reservedIPProblems(reserved: ReservedIP): string[] {
  const entries = reserved.spec.ips ?? [];
  const families = new Set<Family>();
  const problems: string[] = [];
  for (const [index, entry] of entries.entries()) {
    try {
      const family = parseIP(entry.split('-')[0] ?? '').family;
      families.add(family);
      IPSet.parse(family, [entry], `spec.ips[${index}]`);
    } catch (error) {
      problems.push(error instanceof IPAMInputError && error.message.startsWith('spec.') ? error.message : `spec.ips[${index}]: ${show(entry)}: ${(error as Error).message}`);
    }
  }
  if (families.size > 1) problems.push(`spec.ips: mixes IPv4 and IPv6; use one ReservedIP per family`);
  const version = reserved.spec.ipVersion;
  if (version !== undefined && families.size === 1 && !families.has(version)) {
    problems.push(`spec.ipVersion: ${version} does not match spec.ips, which are IPv${[...families][0]}`);
  }
  return problems;
}
