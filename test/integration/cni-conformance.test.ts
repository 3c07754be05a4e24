// CNI conformance with clients nobody here wrote: libcni (bench/peers/cni-runner, built from
// github.com/containernetworking/cni) drives the reference macvlan plugin (github.com/containernetworking/plugins),
// which delegates IPAM to tidepool-cni, in network namespaces this test creates: the node is one namespace
// with a bridge as the macvlan master, each pod another. It touches no interface outside them.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PEERS_DIR } from '../../bench/ipams.ts';
import { stateQuery } from '../../src/contract/lifecycle.ts';
import { RECLAIM_DEFAULTS } from '../../src/gc/config.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import { podLifecycleWorkflowId } from '../../src/temporal/names.ts';
import { createNamespace, deletePools, kubeConfig } from '../harness/cluster.ts';
import { CNI_BINARY, startTidepool, type TidepoolUnderTest } from '../harness/tidepool.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PEERS_BIN = path.join(PEERS_DIR, 'bin');
const RUNNER = path.join(PEERS_BIN, 'cni-runner');
const goAbsent = spawnSync('go', ['version']).status !== 0 && spawnSync('/usr/local/go/bin/go', ['version']).status !== 0;

const tag = randomBytes(3).toString('hex');
const NODE_A = `cni-a-${tag}`;
const NODE_B = `cni-b-${tag}`;
const NETWORK = `conformance-${tag}`;
const OTHER_NETWORK = `conformance-other-${tag}`;
const subnetByte = Number.parseInt(tag.slice(0, 2), 16);
const SUBNET = `10.231.${subnetByte}.0/24`;
const GATEWAY = `10.231.${subnetByte}.1`;
const MIN_RECORD_AGE_MS = 2000;

const namespaces: string[] = [];
const nodeNs = `tpc-${tag}-node`;
let dir: string;
let binDir: string;
let tidepool: TidepoolUnderTest;
let podNamespace: Awaited<ReturnType<typeof createNamespace>>;
let pool: string;
let hostLinksBefore: string[];
let podCount = 0;

interface Run {
  code: number;
  json: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH ?? '' }, timeout: 90_000 }, (error, stdout, stderr) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, json, stdout, stderr });
    });
  });
}

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

function addNetns(name: string): string {
  ip('netns', 'add', name);
  namespaces.push(name);
  return name;
}

function hostLinks(): string[] {
  return (JSON.parse(ip('-j', 'link', 'show')) as { ifname: string }[]).map((link) => link.ifname).sort();
}

interface Network {
  version: string;
  network?: string;
  /** ipam.node_name: the node this configuration serves, for an agent that serves several. */
  node?: string;
}

function conflist({ version, network = NETWORK, node }: Network): string {
  const file = path.join(dir, `${network}-${version}-${node ?? 'agent'}.conflist`);
  const ipam = {
    type: 'tidepool',
    agent_socket: tidepool.socketPath,
    spool_dir: tidepool.spoolDir,
    default_ipv4_ippool: [pool],
    ...(node ? { node_name: node } : {}),
  };
  writeFileSync(file, JSON.stringify({ cniVersion: version, name: network, plugins: [{ type: 'macvlan', master: 'br0', mode: 'bridge', ipam }] }));
  return file;
}

/** A runtime's cache (libcni's record of the attachments it made); a separate one is a runtime that lost its own. */
function cacheDir(name: string): string {
  return path.join(dir, `cache-${name}`);
}

/** libcni as a runtime on the node: the runner runs in the node's namespace, where the macvlan master is. */
function runtime(verb: string, conf: string, cache: string, args: string[] = []): Promise<Run> {
  return run('ip', ['netns', 'exec', nodeNs, RUNNER, '-conf', conf, '-path', binDir, '-cache', cache, verb, ...args]);
}

interface Attachment {
  name: string;
  uid: string;
  containerID: string;
  netns: string;
  conf: string;
  cache: string;
}

async function attachment(name: string, network: Network, cache = cacheDir('runtime'), node = network.node ?? NODE_A): Promise<Attachment> {
  const pod = await kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespacedPod({
      namespace: podNamespace.name,
      body: { metadata: { name }, spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] } },
    });
  const netns = addNetns(`tpc-${tag}-${++podCount}`);
  return { name, uid: pod.metadata!.uid!, containerID: randomBytes(32).toString('hex'), netns, conf: conflist(network), cache };
}

function attachmentArgs(a: Attachment): string[] {
  const cniArgs = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${podNamespace.name};K8S_POD_NAME=${a.name};K8S_POD_INFRA_CONTAINER_ID=${a.containerID};K8S_POD_UID=${a.uid}`;
  return [a.containerID, `/var/run/netns/${a.netns}`, 'eth0', cniArgs];
}

const add = (a: Attachment) => runtime('add', a.conf, a.cache, attachmentArgs(a));
const check = (a: Attachment) => runtime('check', a.conf, a.cache, attachmentArgs(a));
/** The pod deleted (again: a repeated DEL), then the runtime's DEL, as a kubelet DELs a deleted pod's sandbox. */
const del = async (a: Attachment) => {
  await deletePod(a);
  return runtime('del', a.conf, a.cache, attachmentArgs(a));
};

async function deletePod(a: Attachment): Promise<void> {
  await kubeConfig()
    .makeApiClient(CoreV1Api)
    .deleteNamespacedPod({ namespace: podNamespace.name, name: a.name, gracePeriodSeconds: 0 })
    .catch((error: unknown) => {
      if ((error as { code?: number }).code !== 404) throw error;
    });
}

interface PoolRecord {
  ip: string;
  pod: string;
  containerID?: string;
  interface?: string;
  node?: string;
  network?: string;
}

async function records(): Promise<PoolRecord[]> {
  const current = await new TidepoolClient(kubeConfig()).getPool(pool);
  return Object.entries(current?.status?.allocatedIPs ?? {}).map(([address, r]) => ({
    ip: address,
    pod: r.pod,
    ...(r.containerID ? { containerID: r.containerID } : {}),
    ...(r.interface ? { interface: r.interface } : {}),
    ...(r.node ? { node: r.node } : {}),
    ...(r.network ? { network: r.network } : {}),
  }));
}

const podsRecorded = async () => (await records()).map((r) => r.pod.split('/')[1]).sort();

/** What the pod's namespace shows on eth0: its IPv4 addresses and its default route. */
function podView(a: Attachment): { addresses: string[]; defaultRoutes: { gateway?: string; dev?: string }[] } {
  const links = JSON.parse(ip('-n', a.netns, '-j', 'addr', 'show', 'dev', 'eth0')) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
  const addresses = links.flatMap((link) => link.addr_info.filter((i) => i.family === 'inet').map((i) => `${i.local}/${i.prefixlen}`));
  const defaultRoutes = (JSON.parse(ip('-n', a.netns, '-j', 'route', 'show', 'default')) as { gateway?: string; dev?: string }[]).map(({ gateway, dev }) => ({
    ...(gateway ? { gateway } : {}),
    ...(dev ? { dev } : {}),
  }));
  return { addresses, defaultRoutes };
}

function hasEth0(a: Attachment): boolean {
  return spawnSync('ip', ['-n', a.netns, 'link', 'show', 'eth0']).status === 0;
}

/** Prints a verb's real output once, for docs/cni.md. */
function show(what: string, result: Run): void {
  console.log(`[conformance] ${what}: exit ${result.code}${result.stdout.trim() ? `\n${result.stdout.trim()}` : ''}${result.stderr.trim() ? `\nstderr: ${result.stderr.trim()}` : ''}`);
}

describe.skipIf(goAbsent)(`CNI conformance: libcni and the reference macvlan plugin${goAbsent ? ' (skipped: no Go on PATH to build them)' : ''}`, () => {
  beforeAll(async () => {
    execFileSync('bash', [path.join(ROOT, 'stack', 'build-peers.sh'), 'conformance'], { stdio: 'inherit' });
    hostLinksBefore = hostLinks();
    dir = mkdtempSync(path.join(tmpdir(), 'tidepool-conformance-'));
    binDir = path.join(dir, 'bin');
    execFileSync('mkdir', ['-p', binDir]);
    execFileSync('ln', ['-s', path.join(PEERS_BIN, 'macvlan'), path.join(binDir, 'macvlan')]);
    execFileSync('ln', ['-s', CNI_BINARY, path.join(binDir, 'tidepool')]);
    addNetns(nodeNs);
    ip('-n', nodeNs, 'link', 'set', 'lo', 'up');
    ip('-n', nodeNs, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', nodeNs, 'link', 'set', 'br0', 'up');

    podNamespace = await createNamespace('conformance');
    pool = `conformance-${tag}`;
    await new TidepoolClient(kubeConfig()).createPool(pool, { subnet: SUBNET, ips: [`10.231.${subnetByte}.10-10.231.${subnetByte}.60`], gateway: GATEWAY });
    tidepool = await startTidepool({ nodeName: NODE_A, settings: { gc: { ...RECLAIM_DEFAULTS.gc, minRecordAgeMs: MIN_RECORD_AGE_MS } } });
  }, 600_000);

  afterAll(async () => {
    await tidepool?.stop();
    for (const name of [...namespaces].reverse()) spawnSync('ip', ['netns', 'delete', name]);
    await podNamespace?.remove();
    await deletePools([pool]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe.each(['0.4.0', '1.0.0', '1.1.0'])('cniVersion %s', (version) => {
    it("ADD gives eth0 the address and the default route via the gateway; CHECK passes; the deleted pod's DEL frees it, and DEL again succeeds", async () => {
      const a = await attachment(`solo-${version.replaceAll('.', '-')}`, { version });
      const added = await add(a);
      show(`ADD ${version}`, added);
      expect(added.code).toBe(0);
      const result = added.json as { cniVersion: string; ips: { address: string; gateway: string }[]; routes: { dst: string; gw: string }[] };
      expect(result.cniVersion).toBe(version);
      expect(result.ips).toHaveLength(1);
      expect(result.ips[0]!.gateway).toBe(GATEWAY);
      expect(result.routes).toContainEqual({ dst: '0.0.0.0/0', gw: GATEWAY });
      const address = result.ips[0]!.address;
      expect(podView(a)).toEqual({ addresses: [address], defaultRoutes: [{ gateway: GATEWAY, dev: 'eth0' }] });
      expect(await records()).toEqual([
        { ip: address.split('/')[0], pod: `${podNamespace.name}/${a.name}`, containerID: a.containerID, interface: 'eth0', node: NODE_A, network: NETWORK },
      ]);

      const checked = await check(a);
      show(`CHECK ${version}`, checked);
      expect(checked.code).toBe(0);

      const deleted = await del(a);
      show(`DEL ${version}`, deleted);
      expect(deleted.code).toBe(0);
      expect(await records()).toEqual([]);
      expect(hasEth0(a)).toBe(false);
      expect((await del(a)).code).toBe(0);
      expect(await records()).toEqual([]);
    });

    it('GC frees exactly the attachments of this network on this node that the runtime does not list', async () => {
      const slug = version.replaceAll('.', '-');
      const keep = await attachment(`keep-${slug}`, { version });
      // The runtime made this one and still has it in its cache: libcni's GC sends it a DEL.
      const cached = await attachment(`cached-${slug}`, { version });
      // The runtime lost its record of this one: only the plugin's own GC (spec 1.1.0) can free it.
      const lost = await attachment(`lost-${slug}`, { version }, cacheDir(`lost-${slug}`));
      // Another node served by the same agent, and another network on this node: never this GC's.
      const remote = await attachment(`remote-${slug}`, { version, node: NODE_B }, cacheDir(`node-b-${slug}`));
      const other = await attachment(`other-${slug}`, { version, network: OTHER_NETWORK });
      for (const a of [keep, cached, lost, remote, other]) expect((await add(a)).code).toBe(0);
      const addedAt = Date.now();
      expect((await records()).find((r) => r.pod.endsWith(`/${remote.name}`))).toMatchObject({ node: NODE_B, network: NETWORK });
      expect((await records()).find((r) => r.pod.endsWith(`/${other.name}`))).toMatchObject({ node: NODE_A, network: OTHER_NETWORK });
      // Their pods are deleted and no DEL came: what is left to free them is the GC.
      for (const a of [cached, lost]) await deletePod(a);
      const gc = () => runtime('gc', keep.conf, keep.cache, [`${keep.containerID}/eth0`]);
      const all = [keep.name, cached.name, lost.name, remote.name, other.name].sort();

      // At once: the lost attachment's record is younger than the minimum record age, and is left alone.
      const first = await gc();
      show(`GC ${version} (at once)`, first);
      expect(first.code).toBe(0);
      expect(await podsRecorded()).toEqual(all.filter((name) => name !== cached.name));
      expect(hasEth0(cached)).toBe(false);

      await new Promise((resolve) => setTimeout(resolve, Math.max(0, addedAt + MIN_RECORD_AGE_MS + 500 - Date.now())));
      const second = await gc();
      show(`GC ${version} (after the minimum record age)`, second);
      expect(second.code).toBe(0);
      const gcFreesLost = version === '1.1.0';
      const survivors = all.filter((name) => name !== cached.name && (!gcFreesLost || name !== lost.name));
      expect(await podsRecorded()).toEqual(survivors);
      if (gcFreesLost) {
        const state = await tidepool.client.workflow.getHandle(podLifecycleWorkflowId(podNamespace.name, lost.name)).query(stateQuery);
        expect(state).toMatchObject({ state: 'Released', releaseReason: 'RuntimeGC' });
        expect(state.lastReason).toContain(`of network ${NETWORK} on node ${NODE_A} was not among the runtime's 1 valid attachments`);
      }

      expect((await gc()).code).toBe(0);
      expect(await podsRecorded()).toEqual(survivors);

      for (const a of [keep, remote, other, ...(gcFreesLost ? [] : [lost])]) expect((await del(a)).code).toBe(0);
      expect(await records()).toEqual([]);
    });
  });

  it("a live pod's sandbox torn down and started again (a node reboot): the DEL keeps its IP, the new sandbox's ADD gets it back", async () => {
    const first = await attachment('rebooted', { version: '1.1.0' });
    const added = await add(first);
    expect(added.code).toBe(0);
    const address = (added.json as { ips: { address: string }[] }).ips[0]!.address;
    const torn = await runtime('del', first.conf, first.cache, attachmentArgs(first));
    expect(torn.code).toBe(0);
    expect(hasEth0(first)).toBe(false);
    expect(await records()).toMatchObject([{ ip: address.split('/')[0], containerID: first.containerID }]);

    const second: Attachment = { ...first, containerID: randomBytes(32).toString('hex'), netns: addNetns(`tpc-${tag}-${++podCount}`) };
    const again = await add(second);
    expect(again.code).toBe(0);
    expect((again.json as { ips: { address: string }[] }).ips[0]!.address).toBe(address);
    expect(podView(second).addresses).toEqual([address]);
    expect(await records()).toMatchObject([{ ip: address.split('/')[0], containerID: second.containerID }]);
    expect((await check(second)).code).toBe(0);

    expect((await del(second)).code).toBe(0);
    expect(await records()).toEqual([]);
  });

  it('cniVersion 0.3.1: ADD and DEL', async () => {
    const a = await attachment('solo-0-3-1', { version: '0.3.1' });
    const added = await add(a);
    show('ADD 0.3.1', added);
    expect(added.code).toBe(0);
    const result = added.json as { cniVersion: string; ips: { version: string; address: string }[] };
    expect(result).toMatchObject({ cniVersion: '0.3.1', ips: [{ version: '4', gateway: GATEWAY }] });
    expect(podView(a)).toEqual({ addresses: [result.ips[0]!.address], defaultRoutes: [{ gateway: GATEWAY, dev: 'eth0' }] });
    expect((await records()).map((r) => r.pod)).toEqual([`${podNamespace.name}/${a.name}`]);
    expect((await del(a)).code).toBe(0);
    expect(await records()).toEqual([]);
  });

  it('STATUS succeeds with the agent up and fails with code 50 with it down; GC without the agent is a spec error and spools nothing', async () => {
    const conf = conflist({ version: '1.1.0' });
    const cache = cacheDir('runtime');
    const up = await runtime('status', conf, cache);
    show('STATUS (agent up)', up);
    expect(up.code).toBe(0);

    await tidepool.stopAgent();
    const down = await runtime('status', conf, cache);
    show('STATUS (agent down)', down);
    expect(down.code).toBe(1);
    expect(down.json).toMatchObject({ code: 50, msg: expect.stringContaining(`tidepool agent is not reachable at ${tidepool.socketPath}`) });

    const gc = await runtime('gc', conf, cache, []);
    show('GC (agent down)', gc);
    expect(gc.json).toMatchObject({ code: 11 });
    expect(readdirSync(path.dirname(tidepool.spoolDir)).includes(path.basename(tidepool.spoolDir)) ? readdirSync(tidepool.spoolDir) : []).toEqual([]);
  });

  it('touched no interface outside the namespaces it made', () => {
    expect(hostLinks()).toEqual(hostLinksBefore);
  });
});
