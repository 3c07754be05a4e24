import { formatIP, parseIP, parseSubnet } from '../src/ipam/ip.ts';

/** The first `count` addresses after a subnet's network address (from `offset` on), as [first, last]. */
export function hostRange(subnet: string, count: number, offset = 0): [string, string] {
  const { first, family } = parseSubnet(subnet);
  return [formatIP(family, first + 1n + BigInt(offset)), formatIP(family, first + BigInt(offset + count))];
}

/** Every address from `first` to `last`, both included. */
export function ipsInRange(first: string, last: string): string[] {
  const from = parseIP(first);
  const to = parseIP(last);
  const ips: string[] = [];
  for (let value = from.value; value <= to.value; value++) ips.push(formatIP(from.family, value));
  return ips;
}

/** Reads an object and writes it changed, again from a fresh read while the write conflicts (409). */
export async function updateWithRetry<T>(read: () => Promise<T>, write: (current: T) => Promise<void>, attempts = 20): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await write(await read());
      return;
    } catch (error) {
      if ((error as { code?: number }).code !== 409 || attempt >= attempts) throw error;
    }
  }
}
