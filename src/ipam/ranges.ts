import type { Family } from '../contract/lifecycle.ts';
import { formatIP, IPAMInputError, parseIP } from './ip.ts';

/** An inclusive interval of addresses. */
export interface Interval {
  start: bigint;
  end: bigint;
}

/**
 * A set of addresses of one family, kept as sorted, disjoint, non-adjacent intervals, so that sets of any
 * size (an IPv6 /64 included) cost memory and time in the number of intervals, never in addresses.
 */
export class IPSet {
  readonly family: Family;
  readonly intervals: readonly Interval[];

  private constructor(family: Family, intervals: readonly Interval[]) {
    this.family = family;
    this.intervals = intervals;
  }

  static empty(family: Family): IPSet {
    return new IPSet(family, []);
  }

  static fromIntervals(family: Family, intervals: Iterable<Interval>): IPSet {
    const sorted = [...intervals].filter((i) => i.start <= i.end).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const merged: Interval[] = [];
    for (const interval of sorted) {
      const last = merged.at(-1);
      if (last && interval.start <= last.end + 1n) {
        if (interval.end > last.end) merged[merged.length - 1] = { start: last.start, end: interval.end };
      } else {
        merged.push({ ...interval });
      }
    }
    return new IPSet(family, merged);
  }

  static fromValues(family: Family, values: Iterable<bigint>): IPSet {
    return IPSet.fromIntervals(family, [...values].map((v) => ({ start: v, end: v })));
  }

  /**
   * Parses single IPs and `first-last` ranges of `family`. `field` names the input in error messages, e.g.
   * `spec.ips`.
   */
  static parse(family: Family, entries: readonly string[], field: string): IPSet {
    return IPSet.fromIntervals(family, entries.map((entry) => parseRange(family, entry, field)));
  }

  get isEmpty(): boolean {
    return this.intervals.length === 0;
  }

  size(): bigint {
    return this.intervals.reduce((sum, i) => sum + (i.end - i.start + 1n), 0n);
  }

  has(value: bigint): boolean {
    let low = 0;
    let high = this.intervals.length - 1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const interval = this.intervals[middle]!;
      if (value < interval.start) high = middle - 1;
      else if (value > interval.end) low = middle + 1;
      else return true;
    }
    return false;
  }

  /** The lowest address, if any. */
  first(): bigint | undefined {
    return this.intervals[0]?.start;
  }

  union(other: IPSet): IPSet {
    this.assertSameFamily(other);
    return IPSet.fromIntervals(this.family, [...this.intervals, ...other.intervals]);
  }

  subtract(other: IPSet): IPSet {
    this.assertSameFamily(other);
    const result: Interval[] = [];
    let j = 0;
    for (const interval of this.intervals) {
      let start = interval.start;
      while (j < other.intervals.length && other.intervals[j]!.end < start) j++;
      let k = j;
      while (start <= interval.end && k < other.intervals.length && other.intervals[k]!.start <= interval.end) {
        const cut = other.intervals[k]!;
        if (cut.start > start) result.push({ start, end: cut.start - 1n });
        start = cut.end + 1n;
        k++;
      }
      if (start <= interval.end) result.push({ start, end: interval.end });
    }
    return new IPSet(this.family, result);
  }

  intersect(other: IPSet): IPSet {
    return this.subtract(this.subtract(other));
  }

  /** The set as canonical strings: single IPs and `first-last` ranges, sorted. */
  toStrings(): string[] {
    return this.intervals.map(({ start, end }) =>
      start === end ? formatIP(this.family, start) : `${formatIP(this.family, start)}-${formatIP(this.family, end)}`,
    );
  }

  private assertSameFamily(other: IPSet): void {
    if (other.family !== this.family) throw new Error(`cannot combine IPv${this.family} and IPv${other.family} sets`);
  }
}

/** Parses a single IP or a `first-last` range of one family. */
export function parseRange(family: Family, entry: string, field: string): Interval {
  const parts = entry.split('-');
  if (parts.length > 2) throw new IPAMInputError(`${field}: "${entry}" is not an IP or a range "first-last"`);
  const ends = parts.map((part) => {
    try {
      return parseIP(part);
    } catch (error) {
      throw new IPAMInputError(`${field}: "${entry}": ${(error as Error).message}`);
    }
  });
  for (const end of ends) {
    if (end.family !== family) throw new IPAMInputError(`${field}: "${entry}" is not an IPv${family} address or range`);
  }
  const start = ends[0]!.value;
  const end = ends.at(-1)!.value;
  if (start > end) throw new IPAMInputError(`${field}: "${entry}" ends before it starts`);
  return { start, end };
}
