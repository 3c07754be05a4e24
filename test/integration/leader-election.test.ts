import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { microTime } from '../../src/k8s/events.ts';
import { kubeConfig, stack } from '../harness/cluster.ts';
import { exited } from '../harness/worker.ts';

const CANDIDATE = path.resolve(import.meta.dirname, '../fixtures/lease-candidate.ts');
const DURATION_MS = 3000;
const lease = `election-${randomBytes(3).toString('hex')}`;
const children: ChildProcess[] = [];

interface Candidate {
  identity: string;
  child: ChildProcess;
  /** When it began and stopped leading, in order. */
  terms: { from: number; to?: number }[];
}

function candidate(identity: string, name = lease): Candidate {
  const child = spawn(process.execPath, [CANDIDATE, stack().kubeconfig, 'default', name, identity, String(DURATION_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const result: Candidate = { identity, child, terms: [] };
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const [what, at] = buffered.slice(0, end).split(' ');
      buffered = buffered.slice(end + 1);
      if (what === 'leading') result.terms.push({ from: Number(at) });
      if (what === 'stopped') result.terms.at(-1)!.to = Number(at);
    }
  });
  return result;
}

const leader = (candidates: Candidate[]) => candidates.filter((c) => c.terms.length > 0 && c.terms.at(-1)!.to === undefined && c.child.exitCode === null && c.child.signalCode === null);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const name of [lease, `${lease}-taken`]) await kubeConfig().makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace: 'default', name }).catch(() => undefined);
});

describe('the controller Lease, as two worker replicas compete for it', () => {
  it('has one leader at a time, hands over at once on a clean stop, and after the lease duration when the leader is SIGKILLed', async () => {
    const candidates = [candidate('replica-a'), candidate('replica-b')];
    await expect.poll(() => leader(candidates).length, { timeout: 15_000 }).toBe(1);
    await sleep(2 * DURATION_MS);
    // Renewals keep the first leader; the other never starts leading.
    expect(candidates.reduce((terms, c) => terms + c.terms.length, 0)).toBe(1);

    // A clean stop releases the Lease: the other takes it well within the lease duration.
    const first = leader(candidates)[0]!;
    const second = candidates.find((c) => c !== first)!;
    first.child.kill('SIGTERM');
    await exited(first.child);
    const released = Date.now();
    await expect.poll(() => second.terms.length, { timeout: 15_000 }).toBe(1);
    expect(second.terms[0]!.from - released).toBeLessThan(DURATION_MS);
    expect(first.terms[0]!.to).toBeLessThanOrEqual(second.terms[0]!.from);

    // A SIGKILLed leader cannot release: a new candidate waits out the lease duration from when it first saw it, then leads.
    const third = candidate('replica-c');
    candidates.push(third);
    await sleep(DURATION_MS);
    expect(third.terms).toHaveLength(0);
    second.child.kill('SIGKILL');
    await exited(second.child);
    const killed = Date.now();
    await expect.poll(() => third.terms.length, { timeout: 20_000 }).toBe(1);
    const waited = third.terms[0]!.from - killed;
    expect(waited).toBeLessThan(DURATION_MS + 2000);
    expect(leader(candidates).map((c) => c.identity)).toEqual(['replica-c']);

    const holder = await kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: lease });
    expect(holder.spec?.holderIdentity).toBe('replica-c');
    expect(holder.spec?.leaseTransitions).toBe(2);
  });

  it('stops leading as soon as it reads another holder in the Lease, without waiting for its renew deadline', async () => {
    const name = `${lease}-taken`;
    const leases = kubeConfig().makeApiClient(CoordinationV1Api);
    const only = candidate('replica-d', name);
    await expect.poll(() => only.terms.length, { timeout: 15_000 }).toBe(1);
    // Another replica took the Lease (after a partition, say) and renews it.
    const current = await leases.readNamespacedLease({ namespace: 'default', name });
    await leases.replaceNamespacedLease({ namespace: 'default', name, body: { ...current, spec: { ...current.spec, holderIdentity: 'replica-elsewhere', renewTime: microTime(new Date()) } } });
    const taken = Date.now();
    await expect.poll(() => only.terms[0]!.to, { timeout: 10_000 }).toBeDefined();
    expect(only.terms[0]!.to! - taken).toBeLessThan((DURATION_MS * 2) / 3);
  });
});
