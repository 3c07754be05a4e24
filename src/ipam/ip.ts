import type { Family } from '../contract/lifecycle.ts';
import { Address4, Address6 } from 'ip-address';


/** Input that names an IP, range or subnet badly. Its message says which value and why. */
export class IPAMInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IPAMInputError';
  }
}

export interface IP {
  family: Family;
  value: bigint;
}

const parsedIPs = new Map<string, IP>();
const MAX_PARSED_IPS = 1 << 16;

/**
 * Parses one IPv4 or IPv6 address (no prefix length, no zone). Results are memoised: pool records name the
 * same IPs over and over, and a batch of allocations reads every record of the pool once per allocation.
 */
export function parseIP(text: string): IP {
  const known = parsedIPs.get(text);
  if (known) return known;
  const parsed = parseUncached(text);
  if (parsedIPs.size >= MAX_PARSED_IPS) parsedIPs.clear();
  parsedIPs.set(text, Object.freeze(parsed));
  return parsed;
}

function parseUncached(text: string): IP {
  const trimmed = text.trim();
  if (trimmed.includes('/') || trimmed.includes('%')) {
    throw new IPAMInputError(`"${text}" is not a plain IP address (no prefix length or zone allowed)`);
  }
  if (Address4.isValid(trimmed)) return { family: 4, value: new Address4(trimmed).bigInt() };
  if (Address6.isValid(trimmed)) return { family: 6, value: new Address6(trimmed).bigInt() };
  throw new IPAMInputError(`"${text}" is not an IP address`);
}

/** The canonical text of an address: dotted quad, or RFC 5952 compressed IPv6. */
export function formatIP(family: Family, value: bigint): string {
  return family === 4 ? Address4.fromBigInt(value).correctForm() : Address6.fromBigInt(value).correctForm();
}

export function canonicalIP(text: string): string {
  const ip = parseIP(text);
  return formatIP(ip.family, ip.value);
}

export interface Subnet {
  family: Family;
  prefix: number;
  /** The network address. */
  first: bigint;
  /** The last address (IPv4 broadcast). */
  last: bigint;
}

/** Parses a CIDR whose host bits are zero, e.g. `10.6.0.0/16` or `fd00:6::/64`. */
export function parseSubnet(text: string): Subnet {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!match) throw new IPAMInputError(`"${text}" is not a CIDR such as 10.6.0.0/16 or fd00:6::/64`);
  const ip = parseIP(match[1]!);
  const bits = ip.family === 4 ? 32 : 128;
  const prefix = Number(match[2]);
  if (prefix > bits) throw new IPAMInputError(`"${text}": prefix length ${prefix} is longer than ${bits}`);
  const hostBits = BigInt(bits - prefix);
  const first = (ip.value >> hostBits) << hostBits;
  if (first !== ip.value) {
    throw new IPAMInputError(`"${text}" has host bits set; its network is ${formatIP(ip.family, first)}/${prefix}`);
  }
  return { family: ip.family, prefix, first, last: first + (1n << hostBits) - 1n };
}
