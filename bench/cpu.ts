import { readdirSync, readFileSync } from 'node:fs';
import { status } from '../stack/stack.ts';

const TICKS_PER_SECOND = 100;

/** utime+stime of a process, and of its waited-for children (cutime+cstime), in seconds. */
function cpuOf(pid: number | 'self'): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]) / TICKS_PER_SECOND);
  return { own: utime! + stime!, children: cutime! + cstime! };
}

/** Each live process's parent, from /proc. */
function parents(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/**
 * CPU seconds of a process and all its descendants, live and reaped: PostgreSQL does its work in one backend
 * process per connection, which the postmaster's own figures leave out.
 */
function treeCpu(pid: number, children: Map<number, number[]>): number {
  let total = 0;
  for (const [queue, seen] = [[pid], new Set<number>()]; queue.length > 0; ) {
    const next = queue.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    try {
      const { own, children: reaped } = cpuOf(next);
      total += own + reaped;
    } catch {
      continue; // gone meanwhile: its CPU is in its parent's reaped figure by now
    }
    queue.push(...(children.get(next) ?? []));
  }
  return total;
}

export type CpuSample = Record<string, number>;

/**
 * CPU seconds used so far by each local-stack process with its descendants, by this process (the benchmark with Tidepool's worker
 * and agent in it), by the CNI plugin processes it spawned and waited for, and by `daemons` (an IPAM's own
 * processes that this process started, by name: their CPU seconds summed).
 */
export function sampleCpu(daemons: Record<string, number[]> = {}): CpuSample {
  const sample: CpuSample = {};
  const children = parents();
  for (const component of status()) {
    if (component.pid !== undefined) sample[component.name] = treeCpu(component.pid, children);
  }
  for (const [name, pids] of Object.entries(daemons)) sample[name] = pids.reduce((sum, pid) => sum + cpuOf(pid).own, 0);
  const self = cpuOf('self');
  sample['worker + agent (bench process)'] = self.own;
  sample['tidepool-cni processes'] = self.children;
  return sample;
}

export function cpuDelta(before: CpuSample, after: CpuSample): CpuSample {
  return Object.fromEntries(Object.keys(after).map((k) => [k, Math.round(((after[k] ?? 0) - (before[k] ?? 0)) * 100) / 100]));
}
