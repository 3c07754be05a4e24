import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGcSchedule } from '../../src/gc/schedule.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { GC_SCHEDULE_ID, TASK_QUEUE } from '../../src/temporal/names.ts';
import { createNamespace, kubeConfig, stack } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const CLI = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
let createdSchedule = false;
const pool = `cli-${tag}`;

function tidepoolCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, KUBECONFIG: stack().kubeconfig, TEMPORAL_ADDRESS: stack().temporalAddress } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  namespace = await createNamespace('cli');
  await pools().createPool(pool, { subnet: '10.92.0.0/24', ips: ['10.92.0.1-10.92.0.20'], gateway: '10.92.0.254' });
  tidepool = await startTidepool({ taskQueue: TASK_QUEUE });
  try {
    await tidepool.client.schedule.getHandle(GC_SCHEDULE_ID).describe();
  } catch {
    createdSchedule = true;
  }
  await ensureGcSchedule(tidepool.client, { intervalMs: 3_600_000 });
});

afterAll(async () => {
  if (createdSchedule) await tidepool?.client.schedule.getHandle(GC_SCHEDULE_ID).delete().catch(() => undefined);
  await tidepool?.stop();
  await namespace?.remove();
  const p = await pools().getPool(pool);
  if (p) await pools().replacePoolStatus({ ...p, status: {} }).catch(() => undefined);
  await pools().deletePool(pool).catch(() => undefined);
});

describe('the tidepool CLI', () => {
  it('status -a shows every IP and its holder, gc --dry-run reports the zombie, gc reclaims it, history tells its story', async () => {
    const ips: Record<string, string> = {};
    for (const name of ['kept', 'leaked']) {
      const pod = await core().createNamespacedPod({
        namespace: namespace.name,
        body: {
          metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
          spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
        },
      });
      const run = await runCni('ADD', cniEnv({ namespace: namespace.name, name, uid: pod.metadata!.uid! }, randomBytes(32).toString('hex')), netconf(tidepool.socketPath, tidepool.spoolDir));
      ips[name] = (run.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
    }
    await core().deleteNamespacedPod({ namespace: namespace.name, name: 'leaked', gracePeriodSeconds: 0 });

    const status = await tidepoolCli('status', '--pool', pool, '-a');
    expect(status.code, status.stderr).toBe(0);
    const lines = status.stdout.split('\n');
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['POOL', 'SUBNET', 'TOTAL', 'ALLOCATED', 'FREE', 'RESERVED', 'ZOMBIE CANDIDATES', 'UNRECORDED', 'CONFLICTS']);
    expect(lines[1]!.split(/\s+/)).toEqual([pool, '10.92.0.0/24', '20', '2', '18', '0', '1', '0', '0']);
    expect(status.stdout).toMatch(new RegExp(`${ips.kept}\\s+${namespace.name}/kept\\s.*keep`));
    expect(status.stdout).toMatch(new RegExp(`${ips.leaked}\\s+${namespace.name}/leaked\\s.*PodNotFound`));
    const json = JSON.parse((await tidepoolCli('status', '--pool', pool, '-o', 'json')).stdout) as { pool: string; zombieCandidates: number }[];
    expect(json).toEqual([expect.objectContaining({ pool, allocated: 2, zombieCandidates: 1 })]);

    const dry = await tidepoolCli('gc', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('GC sweep (dry run: nothing changed)');
    expect(dry.stdout).toMatch(new RegExp(`${namespace.name}/leaked\\s+\\S+\\s+PodNotFound\\s+${ips.leaked} \\(${pool}\\)`));
    expect(Object.keys((await pools().getPool(pool))!.status!.allocatedIPs!)).toHaveLength(2);

    const gc = await tidepoolCli('gc', '-o', 'json');
    expect(gc.code, gc.stderr).toBe(0);
    const report = JSON.parse(gc.stdout) as { dryRun: boolean; reclaims: { pod: string; reason: string }[] };
    expect(report.dryRun).toBe(false);
    expect(report.reclaims.filter((r) => r.pod === 'leaked').map((r) => r.reason)).toEqual(['PodNotFound']);
    for (let i = 0; i < 50 && Object.keys((await pools().getPool(pool))!.status!.allocatedIPs!).length > 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(Object.values((await pools().getPool(pool))!.status!.allocatedIPs!).map((r) => r.pod)).toEqual([`${namespace.name}/kept`]);

    let history = await tidepoolCli('history', ips.leaked!);
    for (let i = 0; i < 50 && !history.stdout.includes('Reclaimed'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      history = await tidepoolCli('history', ips.leaked!);
    }
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toMatch(new RegExp(`pod-ip/${namespace.name}/leaked\\s.*Reclaimed\\s.*${ips.leaked}\\s+PodNotFound`));
  });

  it('exits 3 when nothing is found and 2 on bad usage, with a message', async () => {
    const none = await tidepoolCli('history', '10.250.250.250');
    expect(none.code).toBe(3);
    expect(none.stdout).toContain('no lifecycle of 10.250.250.250 found');
    const bad = await tidepoolCli('history', 'not-an-ip');
    expect([bad.code, bad.stderr.split('\n')[0]]).toEqual([2, 'tidepool: not-an-ip is neither an IP address nor NAMESPACE/POD']);
    const unknown = await tidepoolCli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage:');
    for (const args of [['--help'], ['help'], ['gc', '-h']]) {
      const help = await tidepoolCli(...args);
      expect([help.code, help.stdout.split('\n')[0], help.stderr], args.join(' ')).toEqual([0, 'usage:', '']);
    }
  });
});
