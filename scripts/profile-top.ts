// Summarises V8 CPU profiles (the .cpuprofile files that `NODE_OPTIONS="--cpu-prof --cpu-prof-dir=DIR" ./dev up`
// leaves when the stack goes down): per file, the busy time (all but idle) and the functions with the most self
// time, as a share of it: node scripts/profile-top.ts DIR/*.cpuprofile [--top 12]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '12' } } });
const top = Number(values.top);
if (positionals.length === 0 || !Number.isInteger(top) || top < 1) {
  console.error('usage: node scripts/profile-top.ts FILE.cpuprofile... [--top N]');
  process.exit(2);
}

const frameName = ({ functionName, url, lineNumber }: ProfileNode['callFrame']) =>
  `${functionName || '(anonymous)'} ${url ? `${url.split('/').slice(-3).join('/')}:${lineNumber + 1}` : ''}`.trim();

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const name = frameName(byId.get(id)!.callFrame);
    selfMicros.set(name, (selfMicros.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const busy = [...selfMicros].filter(([name]) => name !== '(idle)').reduce((sum, [, micros]) => sum + micros, 0);
  console.log(`${path.basename(file)}: busy ${(busy / 1e6).toFixed(1)} s`);
  for (const [name, micros] of [...selfMicros].filter(([n]) => n !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${((100 * micros) / busy).toFixed(1).padStart(5)}%  ${(micros / 1e6).toFixed(2).padStart(7)} s  ${name}`);
  }
}
