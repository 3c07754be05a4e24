import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { runClusterScenarios, SCENARIOS, type IpamUnderTest } from '../../sim/scenarios.ts';
import { createNamespace, deletePools, kubeConfig } from '../harness/cluster.ts';
import { CNI_BINARY, netconf, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const pool = `sim-${tag}`;
const nodes = [0, 1, 2].map((index) => `sim-${tag}-${index}`);
const PODS = 30;
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;

beforeAll(async () => {
  namespace = await createNamespace('sim');
  tidepool = await startTidepool({ controller: true });
  await new TidepoolClient(kubeConfig()).createPool(pool, { subnet: '10.97.0.0/24', ips: [`10.97.0.1-10.97.0.${PODS}`] });
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools([pool]);
  const core = kubeConfig().makeApiClient(CoreV1Api);
  for (const name of nodes) await core.deleteNode({ name }).catch(() => undefined);
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
});
