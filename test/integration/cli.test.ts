import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGcSchedule } from '../../src/gc/schedule.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { GC_SCHEDULE_ID, TASK_QUEUE } from '../../src/temporal/names.ts';
import { stackConfig } from '../../stack/config.ts';
import { createNamespace, deletePools, kubeConfig, stack, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const execFileAsync = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
let createdSchedule = false;
const pool = `cli-${tag}`;
const otherPool = `cli-other-${tag}`;

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
  await deletePools([pool, otherPool]);
});

/** A pod of `poolName` that got its IP by a CNI ADD; returns the IP. */
async function podWithIP(name: string, poolName: string): Promise<string> {
  const pod = await core().createNamespacedPod({
    namespace: namespace.name,
    body: {
      metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [poolName] }) } },
      spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
    },
  });
  const run = await runCni('ADD', cniEnv({ namespace: namespace.name, name, uid: pod.metadata!.uid! }, randomBytes(32).toString('hex')), netconf(tidepool.socketPath, tidepool.spoolDir));
  expect(run.code, run.stdout).toBe(0);
  return (run.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
}

/** A pod that got its IP and was then deleted with no DEL: a zombie record. */
async function zombie(name: string, poolName: string): Promise<string> {
  const ip = await podWithIP(name, poolName);
  await core().deleteNamespacedPod({ namespace: namespace.name, name, gracePeriodSeconds: 0 });
  return ip;
}

describe('the tidepool CLI', () => {
  it('status -a shows every IP and its holder, gc --dry-run reports the zombie, gc reclaims it, history tells its story', async () => {
    const ips = { kept: await podWithIP('kept', pool), leaked: await zombie('leaked', pool) };

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

  it('gc --pool sweeps only the named pool: its zombie is reclaimed, another pool’s is left alone', async () => {
    await pools().createPool(otherPool, { subnet: '10.93.0.0/24', ips: ['10.93.0.1-10.93.0.20'] });
    const inA = await zombie('zombie-a', pool);
    const inB = await zombie('zombie-b', otherPool);
    const holders = async (name: string) => Object.values((await pools().getPool(name))?.status?.allocatedIPs ?? {}).map((r) => r.pod);

    const dry = await tidepoolCli('gc', '--dry-run', '--pool', otherPool);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`GC sweep of IPPool ${otherPool} (dry run: nothing changed)`);
    expect(dry.stdout).toMatch(new RegExp(`${namespace.name}/zombie-b\\s+\\S+\\s+PodNotFound\\s+${inB} \\(${otherPool}\\)`));
    expect(dry.stdout).not.toContain('zombie-a');

    const aimed = await tidepoolCli('gc', '--pool', pool, '-o', 'json');
    expect(aimed.code, aimed.stderr).toBe(0);
    const report = JSON.parse(aimed.stdout) as { dryRun: boolean; scope: unknown; reclaims: { pod: string; reason: string; ips: { ip: string }[] }[] };
    expect([report.dryRun, report.scope]).toEqual([false, { pools: [pool] }]);
    expect(report.reclaims.map((r) => [r.pod, r.reason, r.ips.map((i) => i.ip)])).toEqual([['zombie-a', 'PodNotFound', [inA]]]);
    await waitFor('the zombie of the swept pool to be reclaimed', async () => !(await holders(pool)).includes(`${namespace.name}/zombie-a`), 10_000);
    expect(await holders(otherPool)).toEqual([`${namespace.name}/zombie-b`]);

    const byNamespace = await tidepoolCli('gc', '--dry-run', '--namespace', namespace.name, '-o', 'json');
    expect(byNamespace.code, byNamespace.stderr).toBe(0);
    expect((JSON.parse(byNamespace.stdout) as { reclaims: { pod: string }[] }).reclaims.map((r) => r.pod)).toEqual(['zombie-b']);
  });

  it('exits 2 for a pool, namespace or flag that does not exist, or a flag another command takes, and changes nothing', async () => {
    const before = JSON.stringify((await pools().getPool(pool))?.status?.allocatedIPs);
    for (const [args, message] of [
      [['gc', '--dry-run', '--pool', `nope-${tag}`], `tidepool: IPPool nope-${tag} does not exist`],
      [['gc', '--pool', pool, '--pool', `nope-${tag}`], `tidepool: IPPool nope-${tag} does not exist`],
      [['gc', '--namespace', `nope-${tag}`], `tidepool: namespace nope-${tag} does not exist`],
      [['status', '--pool', `nope-${tag}`], `tidepool: IPPool nope-${tag} does not exist`],
      [['gc', '--bogus'], "tidepool: gc: Unknown option '--bogus'"],
      [['gc', '-a'], "tidepool: gc: Unknown option '-a'"],
      [['status', '--dry-run'], "tidepool: status: Unknown option '--dry-run'"],
      [['history', '10.1.2.3', '--pool', pool], "tidepool: history: Unknown option '--pool'"],
      [['gc', 'now'], 'tidepool: gc takes no argument "now"'],
    ] as const) {
      const run = await tidepoolCli(...args);
      expect([run.code, run.stderr.split('\n')[0]!.split('. ')[0]], args.join(' ')).toEqual([2, message]);
    }
    expect(JSON.stringify((await pools().getPool(pool))?.status?.allocatedIPs)).toBe(before);
  });

  it('runs as the kubectl plugin `kubectl tidepool`, found on PATH, with kubectl’s --kubeconfig and --context', async () => {
    const kubectlBinary = path.join(stackConfig.binDir, 'kubectl');
    const plugin = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          kubectlBinary,
          ['tidepool', ...args],
          // No KUBECONFIG to fall back on: the flag must be what finds the cluster.
          { env: { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig', PATH: `${stackConfig.binDir}:${process.env.PATH}` } },
          (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      });
    const status = await plugin('status', '--pool', pool, '-a', '--kubeconfig', stack().kubeconfig);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout.split('\n')[0]!.split(/\s{2,}/)[0]).toBe('POOL');
    expect(status.stdout).toMatch(new RegExp(`${namespace.name}/kept\\s.*keep`));
    const context = (await execFileAsync(kubectlBinary, ['config', 'current-context', '--kubeconfig', stack().kubeconfig])).stdout.trim();
    const inContext = await plugin('status', '--pool', pool, '--kubeconfig', stack().kubeconfig, '--context', context);
    expect(inContext.code, inContext.stderr).toBe(0);
    const wrong = await plugin('status', '--kubeconfig', stack().kubeconfig, '--context', `nope-${tag}`);
    expect([wrong.code, wrong.stderr.split('\n')[0]]).toEqual([1, `tidepool: no context nope-${tag} in kubeconfig ${stack().kubeconfig} (contexts: ${context})`]);
    const unused = await plugin('history', '10.1.2.3', '--kubeconfig', stack().kubeconfig);
    expect([unused.code, unused.stderr.split('\n')[0]!.split('. ')[0]]).toEqual([2, "tidepool: history: Unknown option '--kubeconfig'"]);
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
