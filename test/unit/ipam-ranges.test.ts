import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIP, formatIP, IPAMInputError, parseIP, parseSubnet } from '../../src/ipam/ip.ts';
import { IPSet } from '../../src/ipam/ranges.ts';

const BASE = parseIP('10.6.0.0').value;
const small = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 8 })).map(([s, len]) => ({
    start: BASE + BigInt(s),
    end: BASE + BigInt(s + len),
  })),
  { maxLength: 8 },
);

function members(set: IPSet): Set<bigint> {
  const out = new Set<bigint>();
  for (const { start, end } of set.intervals) for (let v = start; v <= end; v++) out.add(v);
  return out;
}

describe('parseIP / parseSubnet', () => {
  it('parses and canonicalises both families', () => {
    expect(canonicalIP('10.6.168.131')).toBe('10.6.168.131');
    expect(canonicalIP('FD00:0006:0000::0010')).toBe('fd00:6::10');
    expect(parseSubnet('fd00:6::/64')).toMatchObject({ family: 6, prefix: 64 });
  });

  it.each([
    ['10.6.0.300', 'is not an IP address'],
    ['10.6.0.1/24', 'not a plain IP address'],
    ['fe80::1%eth0', 'not a plain IP address'],
    ['', 'is not an IP address'],
  ])('rejects %j', (text, message) => {
    expect(() => parseIP(text)).toThrow(message);
  });

  it('rejects subnets with host bits and names the network', () => {
    expect(() => parseSubnet('10.6.0.5/16')).toThrow('"10.6.0.5/16" has host bits set; its network is 10.6.0.0/16');
    expect(() => parseSubnet('10.6.0.0/40')).toThrow('prefix length 40 is longer than 32');
  });

  it('round-trips every IPv6 value through formatIP and parseIP', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        expect(parseIP(formatIP(6, value))).toEqual({ family: 6, value });
      }),
    );
  });
});

describe('IPSet', () => {
  it('parses single IPs and ranges, merges overlapping and adjacent ones, and prints them back', () => {
    const set = IPSet.parse(4, ['10.6.0.10-10.6.0.20', '10.6.0.21', '10.6.0.15-10.6.0.16', '10.6.0.30'], 'spec.ips');
    expect(set.toStrings()).toEqual(['10.6.0.10-10.6.0.21', '10.6.0.30']);
    expect(set.size()).toBe(13n);
  });

  it.each([
    [['10.6.0.20-10.6.0.10'], 'spec.ips: "10.6.0.20-10.6.0.10" ends before it starts'],
    [['10.6.0.1-fd00::1'], 'is not an IPv4 address or range'],
    [['10.6.0.1-10.6.0.2-10.6.0.3'], 'is not an IP or a range'],
    [['fd00::1'], 'is not an IPv4 address or range'],
  ])('rejects %j with a message naming the field', (entries, message) => {
    expect(() => IPSet.parse(4, entries, 'spec.ips')).toThrow(IPAMInputError);
    expect(() => IPSet.parse(4, entries, 'spec.ips')).toThrow(message);
  });

  it('union, subtract and intersect agree with set arithmetic on members', () => {
    fc.assert(
      fc.property(small, small, (a, b) => {
        const x = IPSet.fromIntervals(4, a);
        const y = IPSet.fromIntervals(4, b);
        const mx = members(x);
        const my = members(y);
        expect(members(x.union(y))).toEqual(new Set([...mx, ...my]));
        expect(members(x.subtract(y))).toEqual(new Set([...mx].filter((v) => !my.has(v))));
        expect(members(x.intersect(y))).toEqual(new Set([...mx].filter((v) => my.has(v))));
        expect(x.size()).toBe(BigInt(mx.size));
        for (let v = BASE; v < BASE + 80n; v++) expect(x.has(v)).toBe(mx.has(v));
      }),
    );
  });

  it('keeps intervals sorted, disjoint and non-adjacent', () => {
    fc.assert(
      fc.property(small, small, (a, b) => {
        for (const set of [IPSet.fromIntervals(4, a), IPSet.fromIntervals(4, a).subtract(IPSet.fromIntervals(4, b))]) {
          set.intervals.forEach((interval, i) => {
            expect(interval.start <= interval.end).toBe(true);
            if (i > 0) expect(interval.start > set.intervals[i - 1]!.end + 1n).toBe(true);
          });
        }
      }),
    );
  });

  it('handles a whole IPv6 /64 by intervals, without walking it', () => {
    const whole = IPSet.parse(6, ['fd00:6::-fd00:6::ffff:ffff:ffff:ffff'], 'spec.ips');
    const holes = IPSet.parse(6, ['fd00:6::', 'fd00:6::1-fd00:6::ff', 'fd00:6::8000:0:0:0-fd00:6::9000:0:0:0'], 'x');
    const rest = whole.subtract(holes);
    expect(rest.size()).toBe((1n << 64n) - 256n - (0x1000n << 48n) - 1n);
    expect(formatIP(6, rest.first()!)).toBe('fd00:6::100');
  });
});
