import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, CniError } from '../../src/agent/agent.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { stateQuery } from '../../src/contract/lifecycle.ts';
import { WORKFLOWS_PATH } from '../../src/worker/worker.ts';
import { createNamespace, createPodWithPool, createWorkload, deletePools, kubeConfig, stack, waitFor } from '../harness/cluster.ts';
import { cniEnv, netconf, runCni, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const tag = randomBytes(3).toString('hex');
const id = () => randomBytes(32).toString('hex');
let tidepool: TidepoolUnderTest;
let namespace: Awaited<ReturnType<typeof createNamespace>>;
const core = () => kubeConfig().makeApiClient(CoreV1Api);
const apps = () => kubeConfig().makeApiClient(AppsV1Api);
const pools = () => new TidepoolClient(kubeConfig());
const poolNames: string[] = [];
const conf = (ipam: Record<string, unknown> = {}) => netconf(tidepool.socketPath, tidepool.spoolDir, ipam);

async function onePool(suffix: string, ips: string[]): Promise<string> {
  const name = `${suffix}-${tag}`;
  await pools().createPool(name, { subnet: '10.70.0.0/24', ips });
  poolNames.push(name);
  return name;
}

const createPod = (name: string, pool: string) => createPodWithPool(namespace.name, name, pool);

async function deletePod(name: string): Promise<void> {
  await core().deleteNamespacedPod({ namespace: namespace.name, name, gracePeriodSeconds: 0 });
  await waitFor(`pod ${name} to be gone`, async () => {
    try {
      await core().readNamespacedPod({ namespace: namespace.name, name });
      return false;
    } catch {
      return true;
    }
  });
}

const addressOf = (run: { json?: Record<string, unknown> }) => (run.json as { ips: { address: string }[] }).ips[0]!.address;

async function holders(pool: string): Promise<{ ip: string; podUID: string }[]> {
  const records = (await pools().getPool(pool))!.status?.allocatedIPs ?? {};
  return Object.entries(records).map(([ip, r]) => ({ ip, podUID: r.podUID }));
}

beforeAll(async () => {
  namespace = await createNamespace('life');
  tidepool = await startTidepool();
});

afterAll(async () => {
  await tidepool?.stop();
  await namespace?.remove();
  await deletePools(poolNames);
});

describe('a pod re-created under the same name', () => {
  it('stateless: the old pod’s IP is released first, so a 1-IP pool serves the new pod; a late DEL of the old container changes nothing', async () => {
    const pool = await onePool('one', ['10.70.0.10']);
    const first = await createPod('app', pool);
    const oldContainer = id();
    expect(addressOf(await runCni('ADD', cniEnv(first, oldContainer), conf()))).toBe('10.70.0.10/24');

    await deletePod('app');
    const second = await createPod('app', pool);
    const newContainer = id();
    const run = await runCni('ADD', cniEnv(second, newContainer), conf());
    expect(run.code, run.stdout).toBe(0);
    expect(addressOf(run)).toBe('10.70.0.10/24');
    expect(await holders(pool)).toEqual([{ ip: '10.70.0.10', podUID: second.uid }]);

    expect((await runCni('DEL', cniEnv(first, oldContainer), conf())).code).toBe(0);
    expect(await holders(pool)).toEqual([{ ip: '10.70.0.10', podUID: second.uid }]);
    const endpoint = await pools().getPodEndpoint(namespace.name, 'app');
    expect(endpoint?.status.podUID).toBe(second.uid);
  });

  it('StatefulSet: the re-created pod keeps its IP, with or without the old DEL; after a scale-down the DEL releases it', async () => {
    const pool = await onePool('sts', ['10.70.0.20-10.70.0.21']);
    await createWorkload('StatefulSet', namespace.name, 'db', 1, pool);
    const podOf = async () => {
      const pod = await core().readNamespacedPod({ namespace: namespace.name, name: 'db-0' });
      return { namespace: namespace.name, name: 'db-0', uid: pod.metadata!.uid! };
    };
    const recreated = async (oldUID: string) => {
      await core().deleteNamespacedPod({ namespace: namespace.name, name: 'db-0', gracePeriodSeconds: 0 });
      let pod = { namespace: '', name: '', uid: oldUID };
      await waitFor('the statefulset controller to re-create db-0', async () => {
        try {
          pod = await podOf();
          return pod.uid !== oldUID;
        } catch {
          return false;
        }
      });
      return pod;
    };
    await waitFor('db-0', async () => Boolean(await podOf().catch(() => undefined)));

    const first = await podOf();
    const c1 = id();
    const ip = addressOf(await runCni('ADD', cniEnv(first, c1), conf()));
    const endpoint = await pools().getPodEndpoint(namespace.name, 'db-0');
    expect(endpoint?.metadata.ownerReferences ?? []).toEqual([]);
    expect(endpoint?.status).toMatchObject({ ownerKind: 'StatefulSet', ownerName: 'db' });

    // Re-created with its DEL delivered: the DEL keeps the IP, the new pod gets it back.
    const second = await recreated(first.uid);
    expect((await runCni('DEL', cniEnv(first, c1), conf())).code).toBe(0);
    const lifecycle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'db-0'));
    expect((await lifecycle.query(stateQuery)).state).toBe('Retained');
    const c2 = id();
    expect(addressOf(await runCni('ADD', cniEnv(second, c2), conf()))).toBe(ip);
    expect(await holders(pool)).toEqual([{ ip: ip.split('/')[0], podUID: second.uid }]);

    // Re-created with its DEL lost: the new pod's ADD takes the IP over directly.
    const third = await recreated(second.uid);
    expect(addressOf(await runCni('ADD', cniEnv(third, id()), conf()))).toBe(ip);
    expect(await holders(pool)).toEqual([{ ip: ip.split('/')[0], podUID: third.uid }]);
    const state = await lifecycle.query(stateQuery);
    expect([state.state, state.podUID]).toEqual(['Allocated', third.uid]);

    // Scaled down: the ordinal is no longer wanted, so the DEL releases.
    const container = state.interfaces.eth0!.containerID;
    await apps().patchNamespacedStatefulSetScale(
      { namespace: namespace.name, name: 'db', body: [{ op: 'replace', path: '/spec/replicas', value: 0 }] },
    );
    await waitFor('StatefulSet db to want 0 replicas', async () =>
      (await apps().readNamespacedStatefulSet({ namespace: namespace.name, name: 'db' })).spec?.replicas === 0,
    );
    expect((await runCni('DEL', cniEnv(third, container), conf())).code).toBe(0);
    expect(await holders(pool)).toEqual([]);
    expect((await lifecycle.result()).state).toBe('Released');
  });
});

describe('a DEL is never lost', () => {
  it('spools the DEL when the agent cannot be reached, and the agent replays it', async () => {
    const pool = await onePool('spool', ['10.70.0.30']);
    const pod = await createPod('spooled', pool);
    const container = id();
    expect(addressOf(await runCni('ADD', cniEnv(pod, container), conf()))).toBe('10.70.0.30/24');

    const noAgent = netconf(path.join(tidepool.spoolDir, '..', 'no-agent.sock'), tidepool.spoolDir);
    await deletePod('spooled');
    const del = await runCni('DEL', cniEnv(pod, container), noAgent);
    expect([del.code, del.stdout]).toEqual([0, '']);
    expect(readdirSync(tidepool.spoolDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(await holders(pool)).toHaveLength(1);

    expect(await tidepool.agent.replaySpool()).toEqual({ replayed: 1, pending: 0 });
    expect(await holders(pool)).toEqual([]);
    expect(readdirSync(tidepool.spoolDir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('the agent spools a DEL itself when Temporal is unreachable, and ADD fails within its deadline with code 11', async () => {
    const dir = path.join(tidepool.spoolDir, '..', 'temporal-down');
    const connection = Connection.lazy({ address: '127.0.0.1:1' });
    const agent = createAgent({
      client: new Client({ connection }),
      temporalAddress: '127.0.0.1:1',
      nodeName: '',
      addTimeoutMs: 1500,
      delTimeoutMs: 1500,
      spoolDir: dir,
    });
    const ref = { containerID: id(), interface: 'eth0', podNamespace: namespace.name, podName: 'p', podUID: 'u' };
    expect(await agent.del(ref)).toEqual({ spooled: true });
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toHaveLength(1);

    const started = Date.now();
    const error = await agent.add(ref).catch((e: unknown) => e as CniError);
    expect(error).toBeInstanceOf(CniError);
    expect((error as CniError).code).toBe(11);
    expect((error as CniError).message).toContain('is Temporal reachable at 127.0.0.1:1');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('ADD fails with code 11 and a clear message when no worker takes the task within the deadline', async () => {
    const pool = await onePool('noworker', ['10.70.0.40']);
    const pod = await createPod('noworker', pool);
    const connection = await Connection.connect({ address: stack().temporalAddress });
    try {
      const agent = createAgent({
        client: new Client({ connection }),
        temporalAddress: stack().temporalAddress,
        nodeName: '',
        addTimeoutMs: 2000,
        delTimeoutMs: 2000,
        spoolDir: path.join(tidepool.spoolDir, '..', 'noworker'),
        taskQueue: `nobody-polls-${tag}`,
      });
      const error = await agent.add({ containerID: id(), interface: 'eth0', podNamespace: pod.namespace, podName: pod.name, podUID: pod.uid }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CniError);
      expect((error as CniError).code).toBe(11);
      expect((error as CniError).message).toBe(
        `Tidepool did not allocate an IP for pod ${pod.namespace}/noworker within 2 s: is Temporal reachable at ${stack().temporalAddress} and a tidepool worker polling task queue nobody-polls-${tag}?`,
      );
      await new Client({ connection }).workflow.getHandle(podLifecycleWorkflowId(pod.namespace, pod.name)).terminate('test cleanup');
    } finally {
      await connection.close();
    }
    expect(await holders(pool)).toEqual([]);
  });
});

describe('a pod deleted as usual: Terminating, then its DEL', () => {
  it('costs its lifecycle no signal: the controller tells it of a terminating pod only once the grace and the extra delay are over', async () => {
    const pool = await onePool('graceful', ['10.70.0.50']);
    const pod = await createPodWithPool(namespace.name, 'graceful', pool, { nodeName: `graceful-node-${tag}` });
    const container = id();
    expect(addressOf(await runCni('ADD', cniEnv(pod, container), conf()))).toBe('10.70.0.50/24');
    // No kubelet runs the pod's node, so it stays Terminating for its grace: what a runtime's DEL then ends.
    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 30 });
    await waitFor('the pod to be Terminating in the controller cache', async () => (await core().readNamespacedPod({ namespace: namespace.name, name: pod.name })).metadata?.deletionTimestamp !== undefined);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await runCni('DEL', cniEnv(pod, container), conf())).code).toBe(0);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, pod.name));
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    const history = (await handle.fetchHistory()).events ?? [];
    expect(history.filter((event) => event.workflowExecutionSignaledEventAttributes)).toEqual([]);
    expect(history.filter((event) => event.timerStartedEventAttributes)).toEqual([]);
    expect(history.filter((event) => event.workflowTaskCompletedEventAttributes)).toHaveLength(2);
    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 0 });
  });
});

describe("a live pod's sandbox torn down and started again (a node reboot)", () => {
  it('keeps the IP across the DEL for the next sandbox, in one running lifecycle; the DEL of the deleted pod releases it', async () => {
    const pool = await onePool('reboot', ['10.70.0.60-10.70.0.61']);
    const pod = await createPodWithPool(namespace.name, 'rebooted', pool, { nodeName: `reboot-node-${tag}` });
    const [before, after] = [id(), id()];
    const record = async () => (await pools().getPool(pool))!.status?.allocatedIPs?.['10.70.0.60'];
    const add = await runCni('ADD', cniEnv(pod, before), conf());
    expect(addressOf(add)).toBe('10.70.0.60/24');

    expect((await runCni('DEL', cniEnv(pod, before), conf())).code).toBe(0);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, pod.name));
    const retained = await handle.query(stateQuery);
    expect(retained.state).toBe('Allocated');
    expect(retained.lastReason).toContain("keeps its IPs for the pod's next sandbox");
    expect(retained.interfaces['eth0']?.detachedAt).toBeTypeOf('number');
    expect(await record()).toMatchObject({ podUID: pod.uid, containerID: before });
    // The torn-down container holds nothing any more, for CHECK.
    const check = await runCni('CHECK', cniEnv(pod, before), JSON.stringify({ ...JSON.parse(conf()), prevResult: add.json }));
    expect(check.json).toMatchObject({ code: 104 });

    const again = await runCni('ADD', cniEnv(pod, after), conf());
    expect(addressOf(again)).toBe('10.70.0.60/24');
    expect(await record()).toMatchObject({ podUID: pod.uid, containerID: after });
    expect((await pools().getPodEndpoint(namespace.name, pod.name))?.status.ips.map((ip) => ip.containerID)).toEqual([after]);
    const allocated = await handle.query(stateQuery);
    expect(allocated.state).toBe('Allocated');
    expect(allocated.lastReason).toContain("kept the IPs of the pod's earlier sandbox");
    // A late DEL of the first container changes nothing.
    expect((await runCni('DEL', cniEnv(pod, before), conf())).code).toBe(0);
    expect(await record()).toMatchObject({ containerID: after });

    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 30 });
    expect((await runCni('DEL', cniEnv(pod, after), conf())).code).toBe(0);
    expect(await holders(pool)).toEqual([]);
    expect(await pools().getPodEndpoint(namespace.name, pod.name)).toBeUndefined();
    expect((await handle.describe()).status.name).toBe('COMPLETED');
    // ADD, DEL, ADD, DEL and DEL: one run of the lifecycle. The search attributes change at the first ADD and the
    // last DEL only: the kept IPs were the pod's all along.
    const history = (await handle.fetchHistory()).events ?? [];
    expect(history.filter((event) => event.workflowExecutionUpdateAcceptedEventAttributes)).toHaveLength(5);
    const stateUpserts = history.filter((event) => event.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.['TidepoolState']);
    expect(stateUpserts).toHaveLength(2);
    await core().deleteNamespacedPod({ namespace: namespace.name, name: pod.name, gracePeriodSeconds: 0 });
  });
});

describe('CHECK', () => {
  it('passes while the container holds its IPs and fails once they are released', async () => {
    const pool = await onePool('check', ['10.70.0.50']);
    const pod = await createPod('checked', pool);
    const container = id();
    const add = await runCni('ADD', cniEnv(pod, container), conf());
    const withPrev = (prevResult: unknown) =>
      JSON.stringify({ ...JSON.parse(conf()), prevResult });
    expect((await runCni('CHECK', cniEnv(pod, container), withPrev(add.json))).code).toBe(0);
    const wrong = { ...add.json, ips: [{ address: '10.70.0.99/24' }] };
    const mismatch = await runCni('CHECK', cniEnv(pod, container), withPrev(wrong));
    expect(mismatch.json).toMatchObject({ code: 104 });
    expect(String(mismatch.json!.msg)).toContain('does not hold 10.70.0.99/24');
    expect((await runCni('DEL', cniEnv(pod, container), conf())).code).toBe(0);
    const after = await runCni('CHECK', cniEnv(pod, container), withPrev(add.json));
    expect(after.json).toMatchObject({ code: 104 });
    expect(existsSync(tidepool.socketPath)).toBe(true);
  });
});

describe('ADDs that fail', () => {
  it('stay in one lifecycle: three failed ADDs and a fourth that succeeds are one history, Failed and waiting in between', async () => {
    const pool = await onePool('retry', ['10.70.0.80']);
    const holder = await createPod('retry-holder', pool);
    const held = id();
    expect((await runCni('ADD', cniEnv(holder, held), conf())).code).toBe(0);
    const waiting = await createPod('retry-waiting', pool);
    for (let attempt = 0; attempt < 3; attempt++) {
      const failed = await runCni('ADD', cniEnv(waiting, id()), conf());
      expect(failed.json, `ADD ${attempt + 1}`).toMatchObject({ code: 100 });
    }
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'retry-waiting'));
    const meanwhile = await handle.describe();
    expect([meanwhile.status.name, meanwhile.searchAttributes.TidepoolState]).toEqual(['RUNNING', ['Failed']]);
    const failedState = await handle.query(stateQuery);
    expect([failedState.state, failedState.podUID, failedState.failedAttempts]).toEqual(['Failed', waiting.uid, 3]);
    expect(failedState.lastReason).toMatch(/^no IPv4 address is free for pod .* \(ADD 3 failed; waits for the next ADD until \d{4}-/);

    await deletePod('retry-holder');
    expect((await runCni('DEL', cniEnv(holder, held), conf())).code).toBe(0);
    const fourth = await runCni('ADD', cniEnv(waiting, id()), conf());
    expect(fourth.code, fourth.stdout).toBe(0);
    expect(addressOf(fourth)).toBe('10.70.0.80/24');

    const runs = [];
    for await (const execution of tidepool.client.workflow.list({ query: `TidepoolPod = '${namespace.name}/retry-waiting'` })) runs.push(execution.runId);
    expect(runs).toHaveLength(1);
    const state = await handle.query(stateQuery);
    expect([state.state, state.failedAttempts, state.retryUntil, state.lastReason]).toEqual(['Allocated', 3, undefined, `allocated from pod annotation ipam.tidepool.dev/ippool after 3 failed ADDs`]);
    const history = (await handle.fetchHistory()).events ?? [];
    const outcomes = history
      .filter((e) => e.workflowExecutionUpdateCompletedEventAttributes)
      .map((e) => (e.workflowExecutionUpdateCompletedEventAttributes!.outcome?.failure ? 'failed' : 'ok'));
    expect(outcomes).toEqual(['failed', 'failed', 'failed', 'ok']);
  });

  it('end the lifecycle as a failed workflow at once when the pod is gone', async () => {
    const ghost = { namespace: namespace.name, name: 'never-created', uid: randomBytes(16).toString('hex') };
    const run = await runCni('ADD', cniEnv(ghost, id()), conf());
    expect(run.code).not.toBe(0);
    const handle = tidepool.client.workflow.getHandle(podLifecycleWorkflowId(namespace.name, 'never-created'));
    await expect(handle.result()).rejects.toThrow('Workflow execution failed');
    const failure = await handle.result().catch((error: { cause?: { type?: string; message?: string } }) => error.cause);
    expect(failure?.type).toBe('AllocationFailed');
    expect(failure?.message).toMatch(new RegExp(`^no ADD of pod ${namespace.name}/never-created got an IP \\(1 failed\\): pod ${namespace.name}/never-created does not exist`));
    expect((await handle.describe()).status.name).toBe('FAILED');
  });
});

describe('replay', () => {
  it('replays every lifecycle history this file produced against the current workflow code', async () => {
    const query = `TaskQueue = '${tidepool.taskQueue}' AND (ExecutionStatus = 'Completed' OR ExecutionStatus = 'Failed')`;
    let count = 0;
    await waitFor(`visibility: ${query}`, async () => {
      count = (await tidepool.client.workflow.count(query)).count;
      return count > 0;
    });
    const histories = tidepool.client.workflow.list({ query }).intoHistories();
    const results = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH }, histories)) results.push(result);
    expect(results.length).toBe(count);
    expect(results.filter((r) => r.error).map((r) => `${r.workflowId}: ${String(r.error)}`)).toEqual([]);
  });
});
