import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { createNamespace, createWorkload, deletePools, kubeConfig, kubectl, stack, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type CniRun, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const client = () => new TidepoolClient(kubeConfig());
const poolName = `test-ippool-${tag}`;
const reservedName = `test-reservedip-${tag}`;
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;

const podRef = (pod: V1Pod) => ({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid: pod.metadata!.uid! });
const addressOf = (run: CniRun) => (run.json as { ips: { address: string }[] }).ips[0]!.address;

async function appPods(): Promise<V1Pod[]> {
  const list = await core().listNamespacedPod({ namespace: namespace.name, labelSelector: 'app=test-app' });
  return list.items.filter((pod) => !pod.metadata?.deletionTimestamp).sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
}

/** The runtime starting a pod's sandbox: a new container ID each attempt, as kubelet does. */
function startSandbox(pod: V1Pod): { container: string; run: Promise<CniRun> } {
  const container = randomBytes(32).toString('hex');
  return { container, run: runCni('ADD', cniEnv(podRef(pod), container), netconf(tidepool.socketPath, tidepool.spoolDir)) };
}

/** This test pool's entries of status.heldIPs: a pool another run left behind may hold the same IPs. */
async function heldIPs() {
  return ((await client().reservedIPs.get(reservedName))?.status?.heldIPs ?? []).filter((entry) => entry.pool === poolName);
}

beforeAll(async () => {
  namespace = await createNamespace('reserved');
  tidepool = await startTidepool({ controller: true });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await client().reservedIPs.delete(reservedName).catch(() => undefined);
  await deletePools([poolName]);
});

describe("the seed's reserved-IP walk-through", () => {
  it('a 3-IP pool with 2 reserved runs one of 2 replicas; reserving its IP and restarting it leaves it without; deleting the ReservedIP lets both start', async () => {
    await client().createReservedIP(reservedName, { ips: ['10.96.168.131-10.96.168.132'] });
    await client().createPool(poolName, { subnet: '10.96.0.0/16', ips: ['10.96.168.131-10.96.168.133'] });
    // The controller counts a pool no allocation has touched yet, so `kubectl get tpp` is never blank.
    await waitFor('kubectl get tpp to show the new pool’s counts', async () =>
      (await kubectl('get', 'tpp', poolName, '--no-headers', '-o', 'custom-columns=A:.status.allocatedIPCount,T:.status.totalIPCount')).trim().split(/\s+/).join(' ') === '0 3');
    await createWorkload('Deployment', namespace.name, 'test-app', 2, poolName);
    await waitFor('the Deployment to create 2 pods', async () => (await appPods()).length === 2);
    const [first, second] = await appPods();

    // Only 10.96.168.133 is free: one pod starts with it, the other gets a clear no-free-IP error.
    const sandbox = startSandbox(first!);
    const running = await sandbox.run;
    expect(running.code).toBe(0);
    expect(addressOf(running)).toBe('10.96.168.133/16');
    const starved = await startSandbox(second!).run;
    expect(starved.json).toMatchObject({ code: 100 });
    expect(String(starved.json!.msg)).toBe(
      `no IPv4 address is free for pod ${namespace.name}/${second!.metadata!.name} in pool ${poolName} (every IP in use or reserved)`,
    );
    expect(await heldIPs()).toEqual([]);

    // Reserving the running pod's IP does not revoke it; the ReservedIP's status shows who holds it.
    const reservation = (await client().reservedIPs.get(reservedName))!;
    await client().reservedIPs.replace({ ...reservation, spec: { ips: ['10.96.168.131-10.96.168.133'] } });
    await waitFor('status.heldIPs to name the running pod', async () => (await heldIPs()).length === 1);
    expect(await heldIPs()).toEqual([{ ip: '10.96.168.133', pool: poolName, pod: `${namespace.name}/${first!.metadata!.name}`, podUID: first!.metadata!.uid }]);
    expect(Object.keys((await client().getPool(poolName))!.status!.allocatedIPs!)).toEqual(['10.96.168.133']);
    const printed = (await kubectl('get', 'tpr', reservedName)).split('\n');
    expect(printed[0]!.split(/\s{2,}/).slice(0, 4)).toEqual(['NAME', 'VERSION', 'IPS', 'HELD']);
    // kubectl prints the first value a column's JSONPath finds: the first held IP, of any pool.
    const firstHeld = (await client().reservedIPs.get(reservedName))!.status!.heldIPs![0]!.ip;
    expect(printed[1]!.split(/\s{2,}/)[2]).toBe(firstHeld);
    // tidepool status: the held reserved IP is ALLOCATED, the two free reserved ones RESERVED, none FREE.
    const { stdout } = await promisify(execFile)(process.execPath, [path.resolve(import.meta.dirname, '../../src/cli/main.ts'), 'status', '--pool', poolName, '-o', 'json'], {
      env: { ...process.env, KUBECONFIG: stack().kubeconfig },
    });
    expect(JSON.parse(stdout)).toEqual([expect.objectContaining({ allocated: 1, reserved: '2', free: '0', total: '3' })]);

    // Restarting the pod (kubectl delete pod): the runtime's DEL releases the IP, and the replacement gets none.
    await core().deleteNamespacedPod({ namespace: namespace.name, name: first!.metadata!.name! });
    expect((await runCni('DEL', cniEnv(podRef(first!), sandbox.container), netconf(tidepool.socketPath, tidepool.spoolDir))).code).toBe(0);
    await waitFor('the replacement pod', async () => (await appPods()).some((pod) => pod.metadata!.uid !== first!.metadata!.uid && pod.metadata!.uid !== second!.metadata!.uid));
    const replacement = (await appPods()).find((pod) => pod.metadata!.uid !== second!.metadata!.uid)!;
    expect((await startSandbox(replacement).run).json).toMatchObject({ code: 100 });
    expect((await startSandbox(second!).run).json).toMatchObject({ code: 100 });
    await waitFor('status.heldIPs to empty once the IP is released', async () => (await heldIPs()).length === 0);
    expect((await client().getPool(poolName))!.status?.allocatedIPs ?? {}).toEqual({});

    // Deleting the ReservedIP lets both start.
    await client().reservedIPs.delete(reservedName);
    await waitFor('the worker to see the ReservedIP gone', async () => (await startSandboxAddress(replacement)) !== undefined, 15_000);
    const other = await startSandbox(second!).run;
    expect(other.code).toBe(0);
    const allocated = Object.entries((await client().getPool(poolName))!.status!.allocatedIPs!);
    expect(allocated).toHaveLength(2);
    expect(new Set(allocated.map(([, record]) => record.podUID))).toEqual(new Set([replacement.metadata!.uid, second!.metadata!.uid]));
  });
});

/** One sandbox attempt for the pod: its address, or undefined if the ADD failed. */
async function startSandboxAddress(pod: V1Pod): Promise<string | undefined> {
  const run = await startSandbox(pod).run;
  return run.code === 0 ? addressOf(run) : undefined;
}
