import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';
import { serveAgent } from '../../src/agent/server.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { kubeConfig, stack, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni } from '../harness/tidepool.ts';
import { exited, spawnWorker, workerLogLines, workerProcessFixture } from '../harness/worker.ts';

const tag = randomBytes(3).toString('hex');
const taskQueue = `crash-test-${tag}`;
const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-crash-'));
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const fixture = workerProcessFixture(`crash-${tag}`, '10.93.0.0/24', '10.93.0.1-10.93.0.40', taskQueue);

describe('the worker killed with SIGKILL while it reclaims', () => {
  it('reclaims every zombie after its restart, each exactly once', async () => {
    const { namespace, client, pool } = fixture;
    const firstLog = path.join(dir, 'worker-1.log');
    let worker = await spawnWorker(firstLog, taskQueue);
    const agent = createAgent({ client, temporalAddress: stack().temporalAddress, nodeName: '', addTimeoutMs: 30_000, delTimeoutMs: 10_000, spoolDir: path.join(dir, 'spool'), taskQueue });
    const socket = path.join(dir, 'agent.sock');
    const server = await serveAgent(agent, socket);
    try {
      const names = Array.from({ length: 30 }, (_, i) => `z-${i}`);
      const uids = new Map<string, string>();
      for (const name of names) {
        const pod = await core().createNamespacedPod({
          namespace: namespace.name,
          body: { metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] } },
        });
        uids.set(name, pod.metadata!.uid!);
      }
      const runs = await Promise.all(names.map((name) => runCni('ADD', cniEnv({ namespace: namespace.name, name, uid: uids.get(name)! }, randomBytes(32).toString('hex')), netconf(socket, path.join(dir, 'spool')))));
      expect(runs.map((r) => r.code)).toEqual(names.map(() => 0));
      const held = async () => Object.keys((await pools().getPool(pool))?.status?.allocatedIPs ?? {}).length;
      expect(await held()).toBe(30);
      const ips = Object.keys((await pools().getPool(pool))!.status!.allocatedIPs!);

      await Promise.all(names.map((name) => core().deleteNamespacedPod({ namespace: namespace.name, name, gracePeriodSeconds: 0 })));
      // Polled without waitFor's 200 ms pause: on the real Temporal server all 30 reclaims can land within it,
      // and the kill would then come after the reclaim rather than during it.
      const begin = Date.now();
      while ((await held()) === 30) {
        if (Date.now() - begin > 30_000) throw new Error('timed out after 30 s waiting for the reclaim to begin');
      }
      worker.kill('SIGKILL');
      const atKill = await held();
      await exited(worker);
      expect(atKill).toBeGreaterThan(0);

      const secondLog = path.join(dir, 'worker-2.log');
      worker = await spawnWorker(secondLog, taskQueue);
      await waitFor('every zombie to be reclaimed after the restart', async () => (await held()) === 0, 90_000);

      for (const name of names) {
        const workflowId = `pod-ip/${namespace.name}/${name}`;
        const result = (await client.workflow.getHandle(workflowId).result()) as { state: string; releaseReason: string };
        // The restarted worker's first sweep may find an endpoint whose records the killed worker had already
        // released, and hand it to the same lifecycle: then that is the last reason.
        expect([name, result.state, ['PodNotFound', 'EndpointWithoutPod'].includes(result.releaseReason)]).toEqual([name, 'Reclaimed', true]);
        let statuses: string[] = [];
        await waitFor(`visibility to show ${workflowId} completed`, async () => {
          statuses = [];
          for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) statuses.push(execution.status.name);
          return statuses.length > 0 && statuses.every((status) => status === 'COMPLETED');
        });
      }
      // A release whose workflow task was lost in the kill runs again after the restart and finds its record
      // gone (notHeld): compare-and-delete made the first one the only one. So no IP is released twice, every
      // zombie IP is accounted for, and none was taken from another pod.
      // Only this namespace's lines: the workers' sweeps also reclaim what earlier runs on a long-lived stack left.
      const reclaims = [...workerLogLines(firstLog), ...workerLogLines(secondLog)].filter((line) => line.msg === 'reclaimed IPs' && String(line.pod).startsWith(`${namespace.name}/`));
      const released = reclaims.flatMap((line) => line.released as string[]);
      const notHeld = reclaims.flatMap((line) => line.notHeld as string[]);
      expect(released.length).toBeGreaterThan(0);
      expect(reclaims.flatMap((line) => line.heldByOther as unknown[])).toEqual([]);
      expect(new Set(released).size).toBe(released.length);
      expect([...new Set([...released, ...notHeld])].sort()).toEqual([...ips].sort());
    } finally {
      worker.kill('SIGTERM');
      server.close();
    }
  });
});
