import { randomBytes } from 'node:crypto';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import type { IPPoolSpec } from '../../src/k8s/types.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, deletePools, kubeConfig, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const id = () => randomBytes(32).toString('hex');
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const poolNames: string[] = [];
const node = `node-${tag}`;

async function createPool(suffix: string, spec: IPPoolSpec): Promise<string> {
  const name = `${suffix}-${tag}`;
  await pools().createPool(name, spec);
  poolNames.push(name);
  return name;
}

async function createPod(name: string, annotations: Record<string, string>): Promise<{ namespace: string; name: string; uid: string }> {
  const pod: V1Pod = await core().createNamespacedPod({
    namespace: namespace.name,
    body: {
      metadata: { name, annotations },
      spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
    },
  });
  return { namespace: namespace.name, name, uid: pod.metadata!.uid! };
}

const conf = (ipam: Record<string, unknown> = {}, version = '1.0.0') => netconf(tidepool.socketPath, tidepool.spoolDir, ipam, version);

beforeAll(async () => {
  namespace = await createNamespace('alloc');
  await core().createNode({ body: { metadata: { name: node, labels: { 'kubernetes.io/hostname': node } } } });
  tidepool = await startTidepool();
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await core().deleteNode({ name: node }).catch(() => undefined);
  await deletePools(poolNames);
});

describe('100 concurrent CNI ADDs on a pool of exactly 100 IPs', () => {
  let pool: string;
  const pods: { namespace: string; name: string; uid: string }[] = [];
  const containers: string[] = [];
  const ips: string[] = [];

  beforeAll(async () => {
    pool = await createPool('hundred', { subnet: '10.60.0.0/24', ips: ['10.60.0.1-10.60.0.100'], gateway: '10.60.0.254' });
    for (let i = 0; i < 101; i++) pods.push(await createPod(`web-${i}`, { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) }));
  });

  it('gives 100 pods 100 distinct IPs, with pool status and PodEndpoints consistent', async () => {
    const runs = await Promise.all(
      pods.slice(0, 100).map((pod) => {
        const container = id();
        containers.push(container);
        return runCni('ADD', cniEnv(pod, container), conf());
      }),
    );
    for (const run of runs) {
      expect(run.code, run.stdout).toBe(0);
      const result = run.json as { cniVersion: string; ips: { address: string; gateway?: string }[] };
      expect(result.cniVersion).toBe('1.0.0');
      expect(result.ips).toHaveLength(1);
      expect(result.ips[0]!.address).toMatch(/^10\.60\.0\.\d+\/24$/);
      expect(result.ips[0]!.gateway).toBe('10.60.0.254');
      ips.push(result.ips[0]!.address.split('/')[0]!);
    }
    expect(new Set(ips).size).toBe(100);

    const status = (await pools().getPool(pool))!.status!;
    expect(status.allocatedIPCount).toBe(100);
    expect(status.totalIPCount).toBe(100);
    expect(Object.keys(status.allocatedIPs!).sort()).toEqual([...ips].sort());
    pods.slice(0, 100).forEach((pod, i) => {
      const record = status.allocatedIPs![ips[i]!]!;
      expect(record).toMatchObject({ pod: `${pod.namespace}/${pod.name}`, podUID: pod.uid, containerID: containers[i], interface: 'eth0', node });
    });

    const endpoints = await pools().listPodEndpoints(namespace.name);
    expect(endpoints).toHaveLength(100);
    for (const [i, pod] of pods.slice(0, 100).entries()) {
      const endpoint = endpoints.find((e) => e.metadata.name === pod.name)!;
      expect(endpoint.status).toMatchObject({ podUID: pod.uid, node, ips: [{ interface: 'eth0', address: `${ips[i]}/24`, pool }] });
      expect(endpoint.metadata.finalizers).toEqual(['tidepool.dev/ip-protection']);
      expect(endpoint.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Pod', name: pod.name, uid: pod.uid });
    }
  });

  it('refuses the 101st pod with a CNI error that says no IP is free and names the pool, writing nothing', async () => {
    const before = await pools().getPool(pool);
    const run = await runCni('ADD', cniEnv(pods[100]!, id()), conf());
    expect(run.code).not.toBe(0);
    expect(run.json).toMatchObject({ cniVersion: '1.0.0', code: 100 });
    expect(run.json!.msg).toBe(`no IPv4 address is free for pod ${namespace.name}/web-100 in pool ${pool} (every IP in use or reserved)`);
    const after = await pools().getPool(pool);
    expect(after!.status).toEqual(before!.status);
    expect(await pools().getPodEndpoint(namespace.name, 'web-100')).toBeUndefined();
    const metrics = await tidepool.metrics.registry.metrics();
    expect(metrics).toContain(`tidepool_allocations_total{pool="${pool}",outcome="allocated"} 100`);
    expect(metrics).toContain(`tidepool_allocations_total{pool="${pool}",outcome="exhausted"} 1`);
    expect(metrics).toContain('tidepool_allocation_failures_total{type="NoFreeIP"} 1');
    expect(metrics).toContain(`tidepool_pool_allocated{pool="${pool}"} 100`);
    expect(metrics).toContain(`tidepool_pool_free{pool="${pool}"} 0`);
  });

  it("returns the same IP on a repeated ADD; the deleted pod's DEL releases it; a second DEL is fine; the IP can be taken again", async () => {
    const pod = pods[0]!;
    const again = await runCni('ADD', cniEnv(pod, containers[0]!), conf());
    expect(again.code).toBe(0);
    expect((again.json as { ips: { address: string }[] }).ips[0]!.address).toBe(`${ips[0]}/24`);

    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 0 });

    const del = await runCni('DEL', cniEnv(pod, containers[0]!), conf());
    expect([del.code, del.stdout]).toEqual([0, '']);
    const status = (await pools().getPool(pool))!.status!;
    expect(status.allocatedIPs![ips[0]!]).toBeUndefined();
    expect(status.allocatedIPCount).toBe(99);
    await waitFor('the PodEndpoint of web-0 to go', async () => (await pools().getPodEndpoint(namespace.name, 'web-0')) === undefined);

    expect((await runCni('DEL', cniEnv(pod, containers[0]!), conf())).code).toBe(0);

    const waiting = await runCni('ADD', cniEnv(pods[100]!, id()), conf());
    expect(waiting.code, waiting.stdout).toBe(0);
    expect((waiting.json as { ips: { address: string }[] }).ips[0]!.address).toBe(`${ips[0]}/24`);
  });

  it("finds the pod's lifecycle by TidepoolIPs, and its history shows the allocate and release updates", async () => {
    const ip = ips[0]!;
    const query = `TidepoolIPs = '${ip}' AND TidepoolPod = '${namespace.name}/web-0'`;
    let ids: string[] = [];
    await waitFor(`visibility: ${query}`, async () => {
      ids = [];
      for await (const execution of tidepool.client.workflow.list({ query })) ids.push(execution.workflowId);
      return ids.length > 0;
    });
    expect(ids).toEqual([podLifecycleWorkflowId(namespace.name, 'web-0')]);
    const handle = tidepool.client.workflow.getHandle(ids[0]!);
    const described = await handle.describe();
    expect(described.status.name).toBe('COMPLETED');
    const history = await handle.fetchHistory();
    const updates = (history.events ?? [])
      .filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes)
      .map((e) => e.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!.input!.name);
    expect(updates).toEqual(['allocate', 'allocate', 'release']);
    expect((await handle.result()).state).toBe('Released');
  });
});

describe('IPv6 and dual stack', () => {
  it('allocates from an IPv6 pool and from an IPv4 and an IPv6 pool at once, and shapes 0.3.1 results', async () => {
    const v4 = await createPool('ds4', { subnet: '10.61.0.0/24', ips: ['10.61.0.10-10.61.0.19'], gateway: '10.61.0.1' });
    const v6 = await createPool('ds6', { subnet: 'fd00:61::/64', ips: ['fd00:61::10-fd00:61::ffff:ffff'], gateway: 'fd00:61::1' });
    const only6 = await createPod('v6-only', { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv6: [v6] }) });
    const run6 = await runCni('ADD', cniEnv(only6, id()), conf());
    expect(run6.code, run6.stdout).toBe(0);
    expect(run6.json).toMatchObject({ ips: [{ address: 'fd00:61::10/64', gateway: 'fd00:61::1' }] });

    const dual = await createPod('dual', { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [v4], ipv6: [v6] }) });
    const run = await runCni('ADD', cniEnv(dual, id()), conf({}, '0.3.1'));
    expect(run.code, run.stdout).toBe(0);
    expect(run.json).toMatchObject({
      cniVersion: '0.3.1',
      ips: [
        { version: '4', address: '10.61.0.10/24', gateway: '10.61.0.1' },
        { version: '6', address: 'fd00:61::11/64', gateway: 'fd00:61::1' },
      ],
    });
    const endpoint = await pools().getPodEndpoint(namespace.name, 'dual');
    expect(endpoint!.status.ips.map((i) => i.address)).toEqual(['10.61.0.10/24', 'fd00:61::11/64']);
  });

  it('rolls back the IPv4 address when the IPv6 pool is exhausted: nothing is half-written', async () => {
    const v4 = await createPool('rb4', { subnet: '10.62.0.0/24', ips: ['10.62.0.10-10.62.0.19'] });
    const v6 = await createPool('rb6', { subnet: 'fd00:62::/64', ips: ['fd00:62::10'] });
    const annotation = { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [v4], ipv6: [v6] }) };
    const first = await createPod('rb-0', annotation);
    expect((await runCni('ADD', cniEnv(first, id()), conf())).code).toBe(0);
    const second = await createPod('rb-1', annotation);
    const run = await runCni('ADD', cniEnv(second, id()), conf());
    expect(run.json).toMatchObject({ code: 100 });
    expect(run.json!.msg).toContain(`no IPv6 address is free for pod ${namespace.name}/rb-1 in pool ${v6}`);
    const status = (await pools().getPool(v4))!.status!;
    expect(Object.values(status.allocatedIPs!).map((r) => r.pod)).toEqual([`${namespace.name}/rb-0`]);
    expect(await pools().getPodEndpoint(namespace.name, 'rb-1')).toBeUndefined();
  });
});

describe('bad input gets a spec-shaped CNI error that says what to fix', () => {
  it('an unknown pool in the annotation', async () => {
    const pod = await createPod('unknown-pool', { 'ipam.tidepool.dev/ippool': '{"ipv4":["no-such-pool"]}' });
    const run = await runCni('ADD', cniEnv(pod, id()), conf());
    expect(run.code).not.toBe(0);
    expect(run.json).toMatchObject({ cniVersion: '1.0.0', code: 101 });
    expect(run.json!.msg).toBe(
      `no usable IPv4 pool for pod ${namespace.name}/unknown-pool from pod annotation ipam.tidepool.dev/ippool: pool no-such-pool does not exist`,
    );
  });

  it('a malformed annotation', async () => {
    const pod = await createPod('bad-annotation', { 'ipam.tidepool.dev/ippool': '{ipv4: pool-a}' });
    const run = await runCni('ADD', cniEnv(pod, id()), conf());
    expect(run.json).toMatchObject({ code: 101 });
    expect(run.json!.msg).toMatch(/^pod annotation ipam.tidepool.dev\/ippool is not valid JSON .*; expected \{"ipv4":\["pool-a"\],"ipv6":\["pool-b"\]\}$/);
  });

  it('malformed stdin JSON: it names no agent socket, so it goes to the default one, where no agent serves here', async () => {
    const pod = await createPod('bad-stdin', {});
    const run = await runCni('ADD', cniEnv(pod, id()), '{"cniVersion":"1.0.0", "ipam": ');
    expect(run.code).not.toBe(0);
    expect(run.json).toMatchObject({
      code: 11,
      msg: 'tidepool agent is not reachable at /run/tidepool/agent.sock (ENOENT): is the tidepool-agent DaemonSet running on this node?',
    });
  });

  it('a configuration the agent cannot take: judged by the agent', async () => {
    const pod = await createPod('bad-version', {});
    const run = await runCni('ADD', cniEnv(pod, id()), JSON.stringify({ ...(JSON.parse(conf()) as object), cniVersion: 1 }));
    expect(run.code).not.toBe(0);
    expect(run.json).toMatchObject({ cniVersion: '1.1.0', code: 1, msg: 'incompatible CNI version' });
  });

  it('a missing CNI_ARGS field', async () => {
    const env = cniEnv({ namespace: namespace.name, name: 'x', uid: 'u' }, id());
    env.CNI_ARGS = `K8S_POD_NAMESPACE=${namespace.name};K8S_POD_NAME=x`;
    const run = await runCni('ADD', env, conf());
    expect(run.code).not.toBe(0);
    expect(run.json).toMatchObject({ code: 4 });
    expect(String(run.json!.msg)).toContain('K8S_POD_UID');
  });

  it('an ADD for a pod UID that is no longer the pod', async () => {
    const pod = await createPod('replaced', { 'ipam.tidepool.dev/ippool': '{"ipv4":["x"]}' });
    const run = await runCni('ADD', cniEnv({ ...pod, uid: 'old-uid' }, id()), conf());
    expect(run.json).toMatchObject({ code: 102 });
    expect(run.json!.msg).toBe(`pod ${namespace.name}/replaced now has UID ${pod.uid}, but the ADD is for UID old-uid (a pod that was replaced)`);
  });
});
