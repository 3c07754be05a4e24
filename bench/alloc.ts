// npm run bench:alloc [-- --pods 300 --concurrency 1,10,100 --pool-sizes 256,1024,4096 --small-pools 50x64
//   --window 100 --out bench/results/alloc.json --no-docs]
// Measures CNI ADD latency and sustained allocation throughput on one pool of the local stack, with the
// real tidepool-cni processes, the node agent and the worker; then the cost of an allocation as a pool grows
// (one pool holding 256, 1024 and 4096 allocated IPs) and across many small pools; writes the figures to
// docs/benchmarks.md.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger } from '@temporalio/worker';
import { createAgent } from '../src/agent/agent.ts';
import { RECLAIM_DEFAULTS } from '../src/gc/config.ts';
import { serveAgent } from '../src/agent/server.ts';
import { TidepoolClient } from '../src/k8s/client.ts';
import { up } from '../stack/stack.ts';
import { createTidepoolWorker } from '../src/worker/worker.ts';
import { buildCni } from '../scripts/build-cni.ts';
import { cpuDelta, sampleCpu, type CpuSample } from './cpu.ts';
import { markdownTable, percentile, replaceSection } from './report.ts';

const { values: args } = parseArgs({
  options: {
    pods: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '1,10,100' },
    'cold-starts': { type: 'string', default: '30' },
    'pool-sizes': { type: 'string', default: '256,1024,4096' },
    'small-pools': { type: 'string', default: '50x64' },
    window: { type: 'string', default: '100' },
    out: { type: 'string', default: 'bench/results/alloc.json' },
    'no-docs': { type: 'boolean', default: false },
  },
});
const podsPerLevel = Number(args.pods);
const levels = args.concurrency.split(',').map(Number);
const poolSizes = args['pool-sizes'] === '' ? [] : args['pool-sizes'].split(',').map(Number);
const windowAdds = Number(args.window);
const smallPools = /^(\d+)x(\d+)$/.exec(args['small-pools']);
for (const [flag, values] of [['--concurrency', levels], ['--pool-sizes', poolSizes], ['--window', [windowAdds], ['--pods', [podsPerLevel]]]] as const) {
  if (!values.every((value) => Number.isInteger(value) && value > 0)) {
    console.error(`bench:alloc: ${flag} must be positive integers, got ${values.join(',')}`);
    process.exit(2);
  }
}
if (args['small-pools'] !== '' && (!smallPools || !(Number(smallPools[1]) <= 256 && Number(smallPools[2]) <= 254))) {
  console.error(`bench:alloc: --small-pools must be <pools>x<IPs per pool>, at most 256x254 (one /24 each), e.g. 50x64, got ${args['small-pools']}`);
  process.exit(2);
}
/** The processes whose CPU an allocation costs, summed: the API server, etcd, Temporal and the bench process (worker and agent). */
const COST_PARTS = ['kube-apiserver', 'etcd', 'temporal', 'worker + agent (bench process)'] as const;
const root = path.resolve(import.meta.dirname, '..');
const cni = path.join(root, 'dist', 'tidepool-cni');

Runtime.install({ logger: new DefaultLogger('WARN') });

function spawnCni(command: string, env: Record<string, string>, stdin: string): Promise<{ ms: number; code: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(cni, [], { env: { PATH: process.env.PATH ?? '', CNI_COMMAND: command, ...env } }, (error, stdout) => {
      resolve({ ms: performance.now() - started, code: error ? Number(error.code) || 1 : 0, stdout });
    });
    child.stdin!.end(stdin);
  });
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function main(): Promise<void> {
  console.log('bench:alloc: building tidepool-cni and bringing the stack up');
  await buildCni();
  const info = await up();
  const kubeConfig = loadKubeConfig(info.kubeconfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const tidepool = new TidepoolClient(kubeConfig);
  const tag = randomBytes(3).toString('hex');
  const taskQueue = `bench-alloc-${tag}`;
  const dir = path.join(os.tmpdir(), `tidepool-bench-${tag}`);
  mkdirSync(dir, { recursive: true });
  const socketPath = path.join(dir, 'agent.sock');

  const workerConnection = await NativeConnection.connect({ address: info.temporalAddress });
  const { worker, writer, run } = await createTidepoolWorker({
    connection: workerConnection, namespace: info.temporalNamespace, kubeConfig, settings: RECLAIM_DEFAULTS, shutdownGraceMs: 5000, taskQueue,
  });
  const running = run();
  const connection = await Connection.connect({ address: info.temporalAddress });
  const agent = createAgent({
    client: new Client({ connection, namespace: info.temporalNamespace }),
    temporalAddress: info.temporalAddress, nodeName: 'bench', addTimeoutMs: 60_000, delTimeoutMs: 30_000, spoolDir: path.join(dir, 'spool'), taskQueue,
  });
  const agentTimes: number[] = [];
  const timedAgent = {
    ...agent,
    add: async (body: unknown) => {
      const started = performance.now();
      try {
        return await agent.add(body);
      } finally {
        agentTimes.push(performance.now() - started);
      }
    },
  };
  const server = await serveAgent(timedAgent, socketPath);

  const namespace = `bench-${tag}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  for (let i = 0; ; i++) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace });
      break;
    } catch {
      if (i > 100) throw new Error(`ServiceAccount ${namespace}/default never appeared`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const curvePods = Math.max(0, ...poolSizes) + (poolSizes.length > 0 ? windowAdds : 0);
  const poolName = `bench-${tag}`;
  await tidepool.createPool(poolName, { subnet: '10.200.0.0/16', ips: ['10.200.0.1-10.200.255.254'] });
  const netconf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'macvlan', ipam: { type: 'tidepool', agent_socket: socketPath, spool_dir: path.join(dir, 'spool'), default_ipv4_ippool: [poolName] } });

  /** Pods for one phase; a DEL of a live pod keeps its IP for its next sandbox, so each phase has pods of its own. */
  const createPods = async (count: number, prefix: string) => {
    console.log(`bench:alloc: creating ${count} pods`);
    const created: { name: string; uid: string }[] = [];
    await pool(Array.from({ length: count }, (_, i) => i), 20, async (i) => {
      const name = `${prefix}-${i}`;
      const pod = await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] } } });
      created[i] = { name, uid: pod.metadata!.uid! };
    });
    return created;
  };
  /** Deletes the pods before their DELs, as a kubelet DELs a deleted pod's sandbox (unbound pods go at once). */
  const deletePods = (batch: readonly { name: string }[]) =>
    pool([...batch], 20, async (pod) => {
      await core.deleteNamespacedPod({ namespace, name: pod.name, gracePeriodSeconds: 0 });
    });
  const pods = await createPods(podsPerLevel * levels.length, 'p');

  const coldStarts: number[] = [];
  for (let i = 0; i < Number(args['cold-starts']); i++) coldStarts.push((await spawnCni('VERSION', {}, '{"cniVersion":"1.0.0"}')).ms);

  const containers = new Map<string, string>();
  const results = [];
  const cpu: { concurrency: number; wallSeconds: number; cpuSeconds: CpuSample }[] = [];
  for (const [level, concurrency] of levels.entries()) {
    const cpuBefore = sampleCpu();
    const batch = pods.slice(level * podsPerLevel, (level + 1) * podsPerLevel);
    const latencies: number[] = [];
    agentTimes.length = 0;
    const before = { ...writer.stats };
    let failures = 0;
    const started = performance.now();
    await pool(batch, concurrency, async (pod) => {
      const container = randomBytes(32).toString('hex');
      containers.set(pod.name, container);
      const run = await spawnCni('ADD', {
        CNI_CONTAINERID: container, CNI_NETNS: `/var/run/netns/${container.slice(0, 8)}`, CNI_IFNAME: 'eth0',
        CNI_ARGS: `K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
      }, netconf);
      if (run.code !== 0) failures++;
      latencies.push(run.ms);
    });
    const seconds = (performance.now() - started) / 1000;
    cpu.push({ concurrency, wallSeconds: Math.round(seconds * 10) / 10, cpuSeconds: cpuDelta(cpuBefore, sampleCpu()) });
    const operations = writer.stats.operations - before.operations;
    const row = {
      concurrency,
      adds: batch.length,
      failures,
      allocationsPerSecond: Math.round((batch.length / seconds) * 10) / 10,
      addP50Ms: Math.round(percentile(latencies, 50)),
      addP99Ms: Math.round(percentile(latencies, 99)),
      agentP50Ms: Math.round(percentile(agentTimes, 50)),
      statusWritesPerAllocation: Math.round(((writer.stats.writes - before.writes) / Math.max(1, operations)) * 100) / 100,
      conflictRetriesPerAllocation: Math.round(((writer.stats.conflicts - before.conflicts) / Math.max(1, operations)) * 1000) / 1000,
    };
    results.push(row);
    console.log(`bench:alloc: concurrency ${concurrency}: ${JSON.stringify(row)}`);
  }

  await deletePods(pods);
  console.log(`bench:alloc: releasing all ${containers.size} IPs with CNI DEL at concurrency 100`);
  const releaseLatencies: number[] = [];
  const releaseStarted = performance.now();
  await pool(pods, 100, async (pod) => {
    const container = containers.get(pod.name);
    if (!container) return;
    const run = await spawnCni('DEL', {
      CNI_CONTAINERID: container, CNI_IFNAME: 'eth0',
      CNI_ARGS: `K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
    }, netconf);
    if (run.code !== 0) throw new Error(`CNI DEL of ${pod.name} failed: ${run.stdout}`);
    releaseLatencies.push(run.ms);
  });
  const releaseSeconds = (performance.now() - releaseStarted) / 1000;
  // A DEL that found the agent too slow was spooled by the plugin: replay the spool as the agent process does
  // (every 10 s), and count those DELs, before judging what is left.
  let spooledDels = 0;
  const replayDeadline = Date.now() + 120_000;
  for (let pending = Infinity; pending > 0 && Date.now() < replayDeadline; ) {
    const replay = await agent.replaySpool();
    spooledDels += replay.replayed;
    pending = replay.pending;
    if (pending > 0) await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  if (spooledDels > 0) console.log(`bench:alloc: ${spooledDels} DELs had been spooled (the agent did not answer within the plugin's deadline); replayed`);
  const left = (await tidepool.getPool(poolName))?.status?.allocatedIPCount ?? 0;
  if (left !== 0) throw new Error(`${left} IPs still allocated after every DEL and the spool's replay`);

  const netconfFor = (pools: string[]) =>
    JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'macvlan', ipam: { type: 'tidepool', agent_socket: socketPath, spool_dir: path.join(dir, 'spool'), default_ipv4_ippool: pools } });
  const addAll = async (batch: typeof pods, concurrency: number, confOf: (index: number) => string) => {
    let failures = 0;
    await pool(batch.map((pod, index) => ({ pod, index })), concurrency, async ({ pod, index }) => {
      const container = randomBytes(32).toString('hex');
      containers.set(pod.name, container);
      const run = await spawnCni('ADD', {
        CNI_CONTAINERID: container, CNI_NETNS: `/var/run/netns/${container.slice(0, 8)}`, CNI_IFNAME: 'eth0',
        CNI_ARGS: `K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
      }, confOf(index));
      if (run.code !== 0) failures++;
    });
    return failures;
  };
  const delAll = async (batch: typeof pods, confOf: (index: number) => string) => {
    await deletePods(batch);
    await pool(batch.map((pod, index) => ({ pod, index })), 50, async ({ pod, index }) => {
      const container = containers.get(pod.name);
      if (!container) return;
      containers.delete(pod.name);
      const run = await spawnCni('DEL', {
        CNI_CONTAINERID: container, CNI_IFNAME: 'eth0', CNI_ARGS: `K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod.name};K8S_POD_UID=${pod.uid}`,
      }, confOf(index));
      if (run.code !== 0) throw new Error(`CNI DEL of ${pod.name} failed: ${run.stdout}`);
    });
  };
  /** Times `count` ADDs at concurrency 20: allocations per second, CPU-ms per allocation by process, status writes per allocation. */
  const timedWindow = async (batch: typeof pods, confOf: (index: number) => string) => {
    const cpuBefore = sampleCpu();
    const before = { ...writer.stats };
    const started = performance.now();
    const failures = await addAll(batch, 20, confOf);
    const seconds = (performance.now() - started) / 1000;
    const used = cpuDelta(cpuBefore, sampleCpu());
    const perAllocation = (name: string) => Math.round(((used[name] ?? 0) / batch.length) * 10_000) / 10;
    const cpuMsPerAllocation = Object.fromEntries(COST_PARTS.map((name) => [name, perAllocation(name)]));
    return {
      adds: batch.length,
      failures,
      allocationsPerSecond: Math.round((batch.length / seconds) * 10) / 10,
      cpuMsPerAllocation,
      cpuMsPerAllocationTotal: Math.round(Object.values(cpuMsPerAllocation).reduce((sum, value) => sum + value, 0) * 10) / 10,
      statusWritesPerAllocation: Math.round(((writer.stats.writes - before.writes) / Math.max(1, writer.stats.operations - before.operations)) * 100) / 100,
    };
  };

  const poolCurve: (Awaited<ReturnType<typeof timedWindow>> & { records: number })[] = [];
  if (poolSizes.length > 0) {
    const curvePool = `bench-size-${tag}`;
    await tidepool.createPool(curvePool, { subnet: '10.201.0.0/16', ips: ['10.201.0.1-10.201.255.254'] });
    const confOf = () => netconfFor([curvePool]);
    const curve = await createPods(curvePods, 'c');
    let filled = 0;
    for (const size of [...poolSizes].sort((a, b) => a - b)) {
      console.log(`bench:alloc: filling pool ${curvePool} to ${size} allocated IPs, then timing ${windowAdds} ADDs`);
      const fillFailures = await addAll(curve.slice(filled, size), 50, confOf);
      if (fillFailures > 0) throw new Error(`${fillFailures} ADDs failed while filling ${curvePool} to ${size}`);
      const row = { records: size, ...(await timedWindow(curve.slice(size, size + windowAdds), confOf)) };
      filled = size + windowAdds;
      poolCurve.push(row);
      console.log(`bench:alloc: ${size} records: ${JSON.stringify(row)}`);
    }
    console.log(`bench:alloc: releasing the ${filled} IPs of ${curvePool}`);
    await delAll(curve.slice(0, filled), confOf);
    await tidepool.deletePool(curvePool);
  }
  let smallPoolsRow: (Awaited<ReturnType<typeof timedWindow>> & { pools: number; ipsPerPool: number }) | undefined;
  if (smallPools) {
    const [count, size] = [Number(smallPools[1]), Number(smallPools[2])];
    const names = Array.from({ length: count }, (_, k) => `bench-small-${tag}-${k}`);
    // 10.202.0.0/16 cut into /24s, one per pool, `size` IPs from .1 up.
    for (const [k, name] of names.entries()) {
      await tidepool.createPool(name, { subnet: `10.202.${k}.0/24`, ips: [`10.202.${k}.1-10.202.${k}.${size}`] });
    }
    console.log(`bench:alloc: timing ${count * size} ADDs into ${count} pools of ${size} IPs`);
    const confOf = (index: number) => netconfFor([names[index % count]!]);
    const batch = await createPods(count * size, 's');
    smallPoolsRow = { pools: count, ipsPerPool: size, ...(await timedWindow(batch, confOf)) };
    console.log(`bench:alloc: small pools: ${JSON.stringify(smallPoolsRow)}`);
    await delAll(batch, confOf);
    for (const name of names) await tidepool.deletePool(name);
  }

  server.close();
  worker.shutdown();
  await running;
  await workerConnection.close();
  await connection.close();
  await core.deleteNamespace({ name: namespace });
  await tidepool.deletePool(poolName);

  const report = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`,
    command: `npm run bench:alloc -- --pods ${podsPerLevel} --concurrency ${args.concurrency} --pool-sizes ${args['pool-sizes']} --small-pools ${args['small-pools']} --window ${windowAdds}`,
    cniColdStartP50Ms: Math.round(percentile(coldStarts, 50)),
    cniColdStartP99Ms: Math.round(percentile(coldStarts, 99)),
    results,
    releases: {
      dels: releaseLatencies.length,
      releasesPerSecond: Math.round((releaseLatencies.length / releaseSeconds) * 10) / 10,
      delP50Ms: Math.round(percentile(releaseLatencies, 50)),
      delP99Ms: Math.round(percentile(releaseLatencies, 99)),
      spooledDels,
    },
    cpu,
    poolCurve,
    ...(smallPoolsRow ? { smallPools: smallPoolsRow } : {}),
  };
  mkdirSync(path.dirname(path.resolve(root, args.out)), { recursive: true });
  writeFileSync(path.resolve(root, args.out), `${JSON.stringify(report, null, 2)}\n`);
  const table = markdownTable(
    ['concurrent ADDs', 'ADDs', 'failed', 'allocations/s', 'ADD p50 ms', 'ADD p99 ms', 'agent p50 ms', 'ADD p50 / cold start', 'status writes per allocation', 'conflict retries per allocation'],
    results.map((r) => [r.concurrency, r.adds, r.failures, r.allocationsPerSecond, r.addP50Ms, r.addP99Ms, r.agentP50Ms,
      `${(r.addP50Ms / report.cniColdStartP50Ms).toFixed(1)}x`, r.statusWritesPerAllocation, r.conflictRetriesPerAllocation]),
  );
  const components = Object.keys(cpu[0]?.cpuSeconds ?? {});
  const cpuTable = markdownTable(
    ['concurrent ADDs', 'wall s', ...components.map((c) => `${c} CPU s`)],
    cpu.map((c) => [c.concurrency, c.wallSeconds, ...components.map((k) => c.cpuSeconds[k] ?? 0)]),
  );
  const costColumns = COST_PARTS.map((name) => `${name} CPU-ms`);
  const curveRows = [
    ...poolCurve.map((row) => [`one pool, ${row.records} allocated IPs`, row] as const),
    ...(smallPoolsRow ? [[`${smallPoolsRow.pools} pools of ${smallPoolsRow.ipsPerPool} IPs (filled from empty)`, smallPoolsRow] as const] : []),
  ];
  const curveTable = markdownTable(
    ['pools', 'timed ADDs (failed)', 'allocations/s', 'status writes per allocation', ...costColumns, 'CPU-ms per allocation'],
    curveRows.map(([label, row]) => [label, `${row.adds} (${row.failures})`, row.allocationsPerSecond, row.statusWritesPerAllocation, ...COST_PARTS.map((name) => row.cpuMsPerAllocation[name] ?? 0), row.cpuMsPerAllocationTotal]),
  );
  const smallest = poolCurve[0];
  const largest = poolCurve.at(-1);
  const curveRatio = smallest && largest && smallest !== largest
    ? `\n\nCPU per allocation at ${largest.records} records against ${smallest.records}: ${(largest.cpuMsPerAllocationTotal / smallest.cpuMsPerAllocationTotal).toFixed(2)}x (target 2x or less: ${largest.cpuMsPerAllocationTotal <= 2 * smallest.cpuMsPerAllocationTotal ? 'met' : 'missed'}); the API server's alone: ${((largest.cpuMsPerAllocation['kube-apiserver'] ?? 0) / Math.max(0.1, smallest.cpuMsPerAllocation['kube-apiserver'] ?? 0)).toFixed(2)}x.`
    : '';
  const curve = curveRows.length > 0
    ? `\n\nThe cost of an allocation as pools grow: ${windowAdds} ADDs at 20 concurrent timed once the pool holds each size (filled by untimed ADDs before), and the small pools filled from empty; CPU-ms per allocation of the API server, etcd, Temporal and the bench process (the worker and the agent).\n\n${curveTable}${curveRatio}`
    : '';
  const body = `Measured ${report.date.slice(0, 10)} on ${report.machine} with \`${report.command}\`.\n\n` +
    `tidepool-cni cold start (a VERSION call, spawn to exit): p50 ${report.cniColdStartP50Ms} ms, p99 ${report.cniColdStartP99Ms} ms — the baseline of every ADD below.\n\n${table}\n\n` +
    `Releasing all ${report.releases.dels} IPs afterwards with CNI DEL at 100 concurrent: ${report.releases.releasesPerSecond} releases/s, DEL p50 ${report.releases.delP50Ms} ms, p99 ${report.releases.delP99Ms} ms; every IP free at the end.\n\n`+
    `Where the time goes: CPU seconds each process used during each level (2 cores give at most 2 CPU seconds per wall second).\n\n${cpuTable}${curve}`;
  console.log(`\n${body}\n`);
  if (!args['no-docs']) replaceSection(path.join(root, 'docs', 'benchmarks.md'), 'alloc', body);
}

main().then(() => process.exit(0), (error: unknown) => {
  console.error(`bench:alloc failed: ${(error as Error).stack ?? String(error)}`);
  process.exit(1);
});
