import type { HeldReservedIP, IPPool, ReservedIP } from '../k8s/types.ts';
import type { Family } from '../contract/lifecycle.ts';
import { parseIP } from './ip.ts';
import { IPSet } from './ranges.ts';

/** One ReservedIP's addresses, per family; entries the schema would not admit reserve nothing. */
function reservationSets(reservation: ReservedIP): Record<Family, IPSet> {
  const sets: Record<Family, IPSet> = { 4: IPSet.empty(4), 6: IPSet.empty(6) };
  for (const entry of reservation.spec.ips) {
    try {
      const family = parseIP(entry.split('-')[0]!).family;
      sets[family] = sets[family].union(IPSet.parse(family, [entry], `ReservedIP ${reservation.metadata.name} spec.ips`));
    } catch {
      // A range mixing families can match no pool; the webhook refuses it, the allocator ignores it.
    }
  }
  return sets;
}

/** Every address of every ReservedIP that is not being deleted, per family. */
export function reservedSets(reservations: readonly ReservedIP[]): Record<Family, IPSet> {
  const sets: Record<Family, IPSet> = { 4: IPSet.empty(4), 6: IPSet.empty(6) };
  for (const reservation of reservations) {
    if (reservation.metadata.deletionTimestamp) continue;
    const own = reservationSets(reservation);
    sets[4] = sets[4].union(own[4]);
    sets[6] = sets[6].union(own[6]);
  }
  return sets;
}

/**
 * The reserved addresses of one ReservedIP that pods still hold (allocated before the reservation), in address
 * order: what `status.heldIPs` shows an administrator. They are not revoked, and not handed out again.
 */
export function heldReservedIPs(reservation: ReservedIP, pools: readonly IPPool[]): HeldReservedIP[] {
  const sets = reservationSets(reservation);
  const held: { value: bigint; entry: HeldReservedIP }[] = [];
  for (const pool of pools) {
    for (const [ip, record] of Object.entries(pool.status?.allocatedIPs ?? {})) {
      let address;
      try {
        address = parseIP(ip);
      } catch {
        continue;
      }
      if (!sets[address.family].has(address.value)) continue;
      held.push({ value: address.value, entry: { ip, pool: pool.metadata.name, pod: record.pod, podUID: record.podUID } });
    }
  }
  return held
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : a.entry.pool.localeCompare(b.entry.pool)))
    .map(({ entry }) => entry);
}
