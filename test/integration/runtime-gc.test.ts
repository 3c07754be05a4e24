// The runtime GC's safety in the pod's lifecycle: what an ADD gave after the GC's plan is kept, a record that
// names another container is left alone, and a GC that names no node is refused.
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniError, createAgent } from '../../src/agent/agent.ts';
import { runtimeGcReleaseUpdate, stateQuery, type RuntimeGcReleaseRequest } from '../../src/contract/lifecycle.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, deletePools, kubeConfig } from '../harness/cluster.ts';
import { startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const NODE = `gc-node-${tag}`;
const NETWORK = `gc-net-${tag}`;
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
const pool = `runtime-gc-${tag}`;

async function addPod(name: string, containerID: string, node = NODE) {
  const pod = await kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespacedPod({
      namespace: namespace.name,
      body: {
        metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
      },
    });
  const ref = { containerID, interface: 'eth0', podNamespace: namespace.name, podName: name, podUID: pod.metadata!.uid! };
  const added = await tidepool.agent.add({ ...ref, netns: '/var/run/netns/x', defaultPools: { ipv4: [], ipv6: [] }, network: NETWORK });
  return { ref, ip: added.ips[0]!.address.split('/')[0]! };
}

function gcRelease(ref: { podNamespace: string; podName: string; podUID: string; containerID: string }, ip: string, allocatedBefore: number) {
  const request: RuntimeGcReleaseRequest = {
    podUID: ref.podUID,
    containerID: ref.containerID,
    interface: 'eth0',
    network: NETWORK,
    node: NODE,
    validAttachments: 0,
    ips: [{ ip, pool }],
    allocatedBefore,
  };
  return tidepool.client.workflow.getHandle(podLifecycleWorkflowId(ref.podNamespace, ref.podName)).executeUpdate(runtimeGcReleaseUpdate, { args: [request] });
}

const recorded = async (ip: string) => (await new TidepoolClient(kubeConfig()).getPool(pool))?.status?.allocatedIPs?.[ip];

beforeAll(async () => {
  namespace = await createNamespace('runtime-gc');
  await new TidepoolClient(kubeConfig()).createPool(pool, { subnet: '10.232.0.0/24', ips: ['10.232.0.10-10.232.0.20'], gateway: '10.232.0.1' });
  tidepool = await startTidepool({ nodeName: NODE });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools([pool]);
});

describe('the runtime GC in the pod lifecycle', () => {
  it('keeps what an ADD gave the container after the GC read the pools, and releases it once the plan is newer', async () => {
    const { ref, ip } = await addPod('fresh', randomBytes(32).toString('hex'));
    expect(await recorded(ip)).toMatchObject({ node: NODE, network: NETWORK, containerID: ref.containerID });
    const stale = await gcRelease(ref, ip, Date.now() - 60_000);
    expect(stale).toMatchObject({ released: [], note: expect.stringContaining('after the GC read the pools') });
    expect(await recorded(ip)).toBeDefined();

    expect(await gcRelease(ref, ip, Date.now() + 1000)).toEqual({ released: [ip], retained: [] });
    expect(await recorded(ip)).toBeUndefined();
  });

  it('leaves alone a record that names another container of the pod (compare-and-delete)', async () => {
    const { ref, ip } = await addPod('replaced', randomBytes(32).toString('hex'));
    const older = { ...ref, containerID: randomBytes(32).toString('hex') };
    const result = await gcRelease(older, ip, Date.now() + 1000);
    expect(result).toMatchObject({ released: [], note: expect.stringContaining('is left to release') });
    expect(await recorded(ip)).toMatchObject({ containerID: ref.containerID });
    const state = await tidepool.client.workflow.getHandle(podLifecycleWorkflowId(ref.podNamespace, ref.podName)).query(stateQuery);
    expect(state).toMatchObject({ state: 'Allocated', interfaces: { eth0: { containerID: ref.containerID } } });
    expect(state.releaseReason).toBeUndefined();
  });

  it("records the node the pod runs on, not the agent's, for an ADD from an agent that serves another node", async () => {
    const elsewhere = `gc-elsewhere-${tag}`;
    const { ref, ip } = await addPod('elsewhere', randomBytes(32).toString('hex'), elsewhere);
    expect(await recorded(ip)).toMatchObject({ node: elsewhere });
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(ref.podNamespace, ref.podName));
    expect(await handle.query(stateQuery)).toMatchObject({ node: elsewhere });
    const description = await handle.describe();
    expect(await description.staticDetails()).toContain(`- **started on node**: ${NODE}`);
    // The runtime GC of the agent's node leaves the pod on the other node alone.
    expect(await tidepool.agent.gc({ network: NETWORK, validAttachments: [] })).toMatchObject({ node: NODE, stale: 0, released: [] });
    expect(await recorded(ip)).toBeDefined();
  });

  it('refuses a GC that names no node, with code 7', async () => {
    const agent = createAgent({ client: tidepool.client, temporalAddress: 'unused', nodeName: '', addTimeoutMs: 1000, delTimeoutMs: 1000, spoolDir: tidepool.spoolDir });
    const error = await agent.gc({ network: NETWORK, validAttachments: [] }).catch((e: unknown) => e as CniError);
    expect(error).toBeInstanceOf(CniError);
    expect(error).toMatchObject({ code: 7, message: expect.stringContaining('names no node: set NODE_NAME') });
  });
});
