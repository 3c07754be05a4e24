import { randomBytes } from 'node:crypto';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { SimulatedKubelet } from '../../sim/kubelet.ts';
import { isRunning, runClusterScenarios, SCENARIOS, type IpamUnderTest } from '../../sim/scenarios.ts';
import { createNamespace, createWorkload, deletePools, kubeConfig, kubectl, waitFor } from '../harness/cluster.ts';
import { CNI_BINARY, netconf, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const pool = `sim-${tag}`;
const nodes = [0, 1, 2].map((index) => `sim-${tag}-${index}`);
const faultPool = `sim-faults-${tag}`;
const faultNodes = [`sim-faults-${tag}`];
const PODS = 30;
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;

beforeAll(async () => {
  namespace = await createNamespace('sim');
  tidepool = await startTidepool({ controller: true });
  await new TidepoolClient(kubeConfig()).createPool(pool, { subnet: '10.97.0.0/24', ips: [`10.97.0.1-10.97.0.${PODS}`] });
  await new TidepoolClient(kubeConfig()).createPool(faultPool, { subnet: '10.97.1.0/24', ips: ['10.97.1.1-10.97.1.5'] });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools([pool, faultPool]);
  const core = kubeConfig().makeApiClient(CoreV1Api);
  for (const name of [...nodes, ...faultNodes]) await core.deleteNode({ name }).catch(() => undefined);
});

describe('the simulated cluster running Tidepool', () => {
  it(`completes create, rebuild, power-cycle recovery and delete for ${PODS} pods on ${nodes.length} nodes with no IP held twice or leaked`, async () => {
    const ipam: IpamUnderTest = {
      name: 'tidepool',
      binary: CNI_BINARY,
      cniPath: '/opt/cni/bin',
      netconf: () => netconf(tidepool.socketPath, tidepool.spoolDir),
      podAnnotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) },
      allocatedIPs: async () => Object.keys((await new TidepoolClient(kubeConfig()).getPool(pool))?.status?.allocatedIPs ?? {}),
    };
    const { results, kubelet } = await runClusterScenarios({
      kubeConfig: kubeConfig(),
      ipam,
      namespace: namespace.name,
      nodes,
      pods: PODS,
      scenarios: SCENARIOS,
      deadlineMs: 120_000,
      powerOffMs: 30_000,
    });
    const summary = JSON.stringify({ results: results.map(({ scenario, progress, errors }) => ({ scenario, progress, errors })), apiErrors: kubelet.stats.apiErrors });
    expect(results.map((result) => [result.scenario, result.ok, result.progress.split(' ').slice(0, 2).join(' ')]), summary).toEqual([
      ['create', true, `${PODS}/${PODS} Running`],
      ['rebuild', true, `${PODS}/${PODS} Running`],
      ['recovery', true, `${PODS}/${PODS} Running`],
      ['delete', true, '0 pods'],
    ]);
    for (const result of results) {
      expect(result.audit, result.scenario).toEqual({ duplicates: [], leaked: [], notRunning: 0 });
    }
    // Every pod's sandbox was started by a real tidepool-cni process: 30 creates, 30 replacements, 30 restarts.
    expect(kubelet.stats.adds).toBeGreaterThanOrEqual(3 * PODS);
    expect(kubelet.stats.dels).toBeGreaterThanOrEqual(3 * PODS);
  }, 600_000);

  it('starts no pod while the plugin binary is missing and all once it is back; with every DEL dropped, Tidepool still frees every IP', async () => {
    const kubelet = new SimulatedKubelet({
      kubeConfig: kubeConfig(),
      nodes: faultNodes,
      namespace: namespace.name,
      cni: { binary: CNI_BINARY, cniPath: '/opt/cni/bin', netconf: () => netconf(tidepool.socketPath, tidepool.spoolDir) },
      retryMs: 500,
    });
    await kubelet.start();
    try {
      kubelet.setPluginMissing(true);
      await createWorkload('Deployment', namespace.name, 'faults', 5, faultPool);
      await waitFor('failed sandbox starts', async () => kubelet.stats.addFailures >= 5);
      expect(kubelet.listPods().filter(isRunning)).toEqual([]);
      expect(Object.keys(kubelet.stats.errors).join()).toContain('ENOENT');
      // As a real kubelet does: a Warning Event on the pod with the runtime's error.
      const failed = JSON.parse(await kubectl('get', 'events', '-n', namespace.name, '--field-selector', 'reason=FailedCreatePodSandBox', '-o', 'json')) as {
        items: { type: string; message: string; involvedObject: { kind: string } }[];
      };
      expect(failed.items.length).toBeGreaterThan(0);
      expect(failed.items[0]).toMatchObject({ type: 'Warning', involvedObject: { kind: 'Pod' } });
      expect(failed.items[0]!.message).toMatch(/^Failed to create pod sandbox: failed to setup network for sandbox: plugin type="macvlan" failed \(add\): .*ENOENT/);
      kubelet.setPluginMissing(false);
      await waitFor('all 5 pods Running once the plugin is back', async () => kubelet.listPods().filter(isRunning).length === 5, 60_000);

      kubelet.setDropDelShare(1);
      await kubeConfig().makeApiClient(AppsV1Api).deleteNamespacedDeployment({ namespace: namespace.name, name: 'faults' });
      await waitFor('the pods to be gone', async () => kubelet.listPods().length === 0, 60_000);
      expect(kubelet.stats.droppedDels).toBeGreaterThanOrEqual(5);
      await waitFor('Tidepool to reclaim every IP whose DEL never came', async () => Object.keys((await new TidepoolClient(kubeConfig()).getPool(faultPool))?.status?.allocatedIPs ?? {}).length === 0, 60_000);
    } finally {
      await kubelet.stop();
    }
  }, 300_000);
});
