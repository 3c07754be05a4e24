import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agent/agent.ts';
import { serveAgent } from '../../src/agent/server.ts';
import { NODE_DEFAULTS } from '../../src/contract/defaults.ts';
import { parseDuration } from '../../src/config.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { kubeConfig, stack } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni } from '../harness/tidepool.ts';
import { exited, spawnWorker, workerProcessFixture } from '../harness/worker.ts';

const tag = randomBytes(3).toString('hex');
const taskQueue = `failover-test-${tag}`;
const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-failover-'));
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const fixture = workerProcessFixture(`failover-${tag}`, '10.94.0.0/24', '10.94.0.1-10.94.0.60', taskQueue);
const PODS = 16;
const workers: ChildProcess[] = [];

afterAll(() => {
  for (const worker of workers) worker.kill('SIGTERM');
});

/** The worker (by pid) that ran a lifecycle's first workflow task: the one that holds it in its sticky cache. */
async function firstTaskPid(pod: string): Promise<number> {
  const history = await fixture.client.workflow.getHandle(podLifecycleWorkflowId(fixture.namespace.name, pod)).fetchHistory();
  const started = history.events?.find((event) => event.workflowTaskStartedEventAttributes);
  return Number.parseInt(started?.workflowTaskStartedEventAttributes?.identity?.split('@')[0] ?? '', 10);
}

describe('two workers on one task queue, one SIGKILLed', () => {
  it('answers every ADD and DEL through the other within their deadlines, the dead one’s lifecycles included, and gives no IP twice', async () => {
    const { namespace, client, pool } = fixture;
    const addTimeoutMs = parseDuration(NODE_DEFAULTS.agentAddTimeout, 'add');
    const delTimeoutMs = parseDuration(NODE_DEFAULTS.agentDelTimeout, 'del');
    for (const name of ['a', 'b']) workers.push(await spawnWorker(path.join(dir, `worker-${name}.log`), taskQueue, { TIDEPOOL_GC_NAMESPACE_SELECTOR: `kubernetes.io/metadata.name=${namespace.name}` }));
    const [doomed] = workers as [ChildProcess, ChildProcess];
    const agent = createAgent({ client, temporalAddress: stack().temporalAddress, nodeName: '', addTimeoutMs, delTimeoutMs, spoolDir: path.join(dir, 'spool'), taskQueue });
    const socket = path.join(dir, 'agent.sock');
    const server = await serveAgent(agent, socket);
    const config = netconf(socket, path.join(dir, 'spool'));
    try {
      const pods = new Map<string, { uid: string; container: string }>();
      const createPods = async (names: string[]) => {
        for (const name of names) {
          const pod = await core().createNamespacedPod({
            namespace: namespace.name,
            body: {
              metadata: { name, annotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) } },
              spec: { nodeName: `failover-node-${namespace.name}`, containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] },
            },
          });
          pods.set(name, { uid: pod.metadata!.uid!, container: randomBytes(32).toString('hex') });
        }
      };
      const call = async (command: 'ADD' | 'DEL', name: string) => {
        const { uid, container } = pods.get(name)!;
        const started = performance.now();
        const run = await runCni(command, cniEnv({ namespace: namespace.name, name, uid }, container), config);
        return { name, command, code: run.code, ms: performance.now() - started, ip: (run.json?.ips as { address: string }[] | undefined)?.[0]?.address };
      };
      const first = Array.from({ length: PODS }, (_, i) => `before-${i}`);
      const second = Array.from({ length: PODS }, (_, i) => `after-${i}`);
      await createPods([...first, ...second]);
      const before = await Promise.all(first.map((name) => call('ADD', name)));
      expect(before.map((r) => r.code)).toEqual(first.map(() => 0));

      // Both workers took lifecycles; the doomed one's are in its cache, and their next tasks go to its sticky queue.
      const onDoomed = (await Promise.all(first.map(firstTaskPid))).filter((pid) => pid === doomed.pid).length;
      expect(onDoomed).toBeGreaterThan(0);
      expect(onDoomed).toBeLessThan(PODS);

      // The first pods are deleted and stay Terminating (no kubelet ends them); their DELs come after the kill.
      for (const name of first) await core().deleteNamespacedPod({ namespace: namespace.name, name, gracePeriodSeconds: 60 });
      doomed.kill('SIGKILL');
      await exited(doomed);
      // New pods start and the first pods' sandboxes go, every call staggered over a few seconds after the kill.
      const after = await Promise.all([
        ...second.map(async (name, i) => (await sleep(i * 150), call('ADD', name))),
        ...first.map(async (name, i) => (await sleep(i * 150), call('DEL', name))),
      ]);
      const slowest = (command: string) => Math.max(...after.filter((r) => r.command === command).map((r) => r.ms));
      console.log(`after the kill: ${onDoomed}/${PODS} lifecycles were on the killed worker; slowest ADD ${Math.round(slowest('ADD'))} ms, slowest DEL ${Math.round(slowest('DEL'))} ms`);
      expect(after.map((r) => `${r.command} ${r.name}: ${r.code}`)).toEqual(after.map((r) => `${r.command} ${r.name}: 0`));
      expect(slowest('ADD')).toBeLessThan(addTimeoutMs);
      expect(slowest('DEL')).toBeLessThan(delTimeoutMs);

      // The pool holds the new pods' IPs, one each, and none of the released ones.
      const allocated = (await pools().getPool(pool))!.status!.allocatedIPs ?? {};
      expect(Object.values(allocated).map((record) => record.pod).sort()).toEqual(second.map((name) => `${namespace.name}/${name}`).sort());
      const ips = after.filter((r) => r.command === 'ADD').map((r) => r.ip);
      expect(new Set(ips).size).toBe(PODS);
    } finally {
      server.close();
    }
  });
});
