import type { IPPool, IPPoolSpec } from '../k8s/types.ts';
import type { Family, Route } from '../contract/lifecycle.ts';
import { formatIP, IPAMInputError, parseIP, parseSubnet, type Subnet } from './ip.ts';
import { IPSet } from './ranges.ts';

/** A pool's addresses, parsed once: what it may hand out is `allocatable`. */
export interface PoolAddresses {
  family: Family;
  subnet: Subnet;
  gateway: bigint | undefined;
  /** spec.ips minus spec.excludeIPs minus the gateway. */
  allocatable: IPSet;
}

/** Parses a pool's spec; throws IPAMInputError naming the pool and the field. */
export function poolAddresses(name: string, spec: IPPoolSpec): PoolAddresses {
  const field = (f: string) => `IPPool ${name} ${f}`;
  let subnet: Subnet;
  try {
    subnet = parseSubnet(spec.subnet);
  } catch (error) {
    throw new IPAMInputError(`${field('spec.subnet')}: ${(error as Error).message}`);
  }
  const family = subnet.family;
  if (spec.ipVersion !== undefined && spec.ipVersion !== family) {
    throw new IPAMInputError(`${field('spec.ipVersion')} is ${spec.ipVersion} but subnet ${spec.subnet} is IPv${family}`);
  }
  const inSubnet = IPSet.fromIntervals(family, [{ start: subnet.first, end: subnet.last }]);
  const ips = IPSet.parse(family, spec.ips ?? [], field('spec.ips'));
  const outside = ips.subtract(inSubnet);
  if (!outside.isEmpty) {
    throw new IPAMInputError(`${field('spec.ips')}: ${outside.toStrings().join(', ')} outside subnet ${spec.subnet}`);
  }
  const excluded = IPSet.parse(family, spec.excludeIPs ?? [], field('spec.excludeIPs'));
  let gateway: bigint | undefined;
  if (spec.gateway !== undefined) {
    const parsed = parseIP(spec.gateway);
    if (parsed.family !== family) throw new IPAMInputError(`${field('spec.gateway')} ${spec.gateway} is not IPv${family}`);
    gateway = parsed.value;
  }
  const notAllocatable = gateway === undefined ? excluded : excluded.union(IPSet.fromValues(family, [gateway]));
  return { family, subnet, gateway, allocatable: ips.subtract(notAllocatable) };
}

export function poolFamily(spec: IPPoolSpec): Family {
  return spec.ipVersion ?? (spec.subnet.includes(':') ? 6 : 4);
}

/** The address with the subnet's prefix length, as CNI results and PodEndpoints carry it. */
export const DEFAULT_ROUTE_DST: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/**
 * The routes an interface of this pool gets: the default route via the gateway (unless `defaultRoute` is
 * false, as for a second NIC whose pod has its default route elsewhere), then `spec.routes`.
 */
export function poolRoutes(spec: IPPoolSpec, family: Family): Route[] {
  const viaGateway = spec.gateway && spec.defaultRoute !== false ? [{ dst: DEFAULT_ROUTE_DST[family], gw: spec.gateway }] : [];
  return [...viaGateway, ...(spec.routes ?? [])];
}

export function addressWithPrefix(addresses: PoolAddresses, ip: string): string {
  return `${ip}/${addresses.subnet.prefix}`;
}

/**
 * The lowest allocatable address that is neither reserved nor taken (held or cooling down), or undefined
 * when the pool has none free. Costs O(intervals), never a walk over the addresses.
 */
export function chooseFreeIP(addresses: PoolAddresses, reserved: IPSet, taken: IPSet): string | undefined {
  const free = addresses.allocatable.subtract(reserved).subtract(taken);
  const first = free.first();
  return first === undefined ? undefined : formatIP(addresses.family, first);
}

/** The set of addresses named by canonical IP strings (keys of status maps). */
export function ipSetOf(family: Family, ips: Iterable<string>): IPSet {
  const values: bigint[] = [];
  for (const ip of ips) {
    const parsed = parseIP(ip);
    if (parsed.family === family) values.push(parsed.value);
  }
  return IPSet.fromValues(family, values);
}

export function isTerminating(pool: IPPool): boolean {
  return Boolean(pool.metadata.deletionTimestamp);
}
