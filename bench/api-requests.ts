// The API server's request counters (apiserver_request_total), read through kubectl, so that a benchmark can
// say how many writes of each kind a scenario cost and how many of them conflicted (409).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Counts by "VERB resource[/subresource]" (writes only) and the 409 answers among them. */
export interface ApiWrites {
  writes: Record<string, number>;
  conflicts: Record<string, number>;
}

const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY']);
const LINE = /^apiserver_request_total\{([^}]*)\} (\S+)$/;
const LABEL = /(\w+)="([^"]*)"/g;

export function parseApiWrites(metrics: string): ApiWrites {
  const result: ApiWrites = { writes: {}, conflicts: {} };
  for (const line of metrics.split('\n')) {
    const match = LINE.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1]!.matchAll(LABEL)].map(([, key, value]) => [key!, value!]));
    if (!WRITE_VERBS.has(labels.verb ?? '') || !labels.resource) continue;
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
    const count = Number(match[2]);
    result.writes[key] = (result.writes[key] ?? 0) + count;
    if (labels.code === '409') result.conflicts[key] = (result.conflicts[key] ?? 0) + count;
  }
  return result;
}

export async function sampleApiWrites(kubeconfig: string): Promise<ApiWrites> {
  const { stdout } = await promisify(execFile)('kubectl', ['--kubeconfig', kubeconfig, 'get', '--raw', '/metrics'], { maxBuffer: 256 << 20 });
  return parseApiWrites(stdout);
}

export function apiWritesDelta(before: ApiWrites, after: ApiWrites): ApiWrites {
  const delta = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.entries(b).map(([key, value]) => [key, value - (a[key] ?? 0)]).filter(([, value]) => (value as number) > 0));
  return { writes: delta(before.writes, after.writes), conflicts: delta(before.conflicts, after.conflicts) };
}

/** "1.02 PUT ippools/status (0.05 conflicted), 1.00 POST podendpoints, ..." per pod, largest first. */
export function writesPerPod(writes: ApiWrites, pods: number): string {
  return Object.entries(writes.writes)
    .sort((a, b) => b[1] - a[1])
    .filter(([, count]) => count / pods >= 0.01)
    .map(([key, count]) => {
      const conflicted = writes.conflicts[key] ?? 0;
      return `${(count / pods).toFixed(2)} ${key}${conflicted > 0 ? ` (${(conflicted / pods).toFixed(2)} conflicted)` : ''}`;
    })
    .join(', ');
}
