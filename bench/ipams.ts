import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { formatIP, parseIP, parseSubnet } from '../src/ipam/ip.ts';
import { TidepoolClient } from '../src/k8s/client.ts';
import type { IPPool } from '../src/k8s/types.ts';
import type { IpamUnderTest } from '../sim/scenarios.ts';
import { stackConfig } from '../stack/config.ts';
import { startComponent, stopComponent } from '../stack/stack.ts';
import { hostRange, ipsInRange, updateWithRetry } from './pool-ranges.ts';
import { prepareSpiderpool, spiderpoolMissing, type SpiderpoolOptions } from './spiderpool.ts';

export const IPAMS = ['tidepool', 'spiderpool', 'host-local', 'whereabouts'] as const;
export type IpamName = (typeof IPAMS)[number];

/** stack/build-peers.sh's output: the peers cache beside the stack's binaries (in $TIDEPOOL_CACHE, else .cache). */
export const PEERS_DIR = path.join(path.dirname(stackConfig.binDir), 'peers');

/** Why an IPAM cannot run on this machine, or undefined: only Spiderpool's build can be missing (no source tarball). */
export function ipamMissing(name: IpamName): string | undefined {
  return name === 'spiderpool' ? spiderpoolMissing(PEERS_DIR) : undefined;
}

export interface IpamContext {
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
  root: string;
  /** stack/build-peers.sh's output folder. */
  peersDir: string;
  /** A unique tag for this run's objects. */
  tag: string;
  nodes: readonly string[];
  /** How many IPs the IPAM may hand out. */
  ips: number;
  tidepool: { cni: string; agentSocket: string; spoolDir: string };
  spiderpool?: SpiderpoolOptions;
}

/** What the reclaim benchmark does to an IPAM that reclaims IPs by itself. */
export interface ReclaimControls {
  /** The process that reclaims: Tidepool's worker, Spiderpool's controller. */
  reclaimer: string;
  /** SIGKILL, as a crash. */
  kill: () => Promise<void>;
  /** Starts it again and waits until it is ready. */
  restart: () => Promise<void>;
  /** Writes records for `count` pods that do not exist (`namespace/ghost-N`) on free IPs of the pool's status; returns the IPs. */
  writeDirtyRecords: (count: number, namespace: string) => Promise<string[]>;
}

export type PreparedIpam = IpamUnderTest & {
  cleanup: () => Promise<void>;
  /** The IPAM's own daemons that this process started, by name, for the CPU figures. */
  processes?: () => Record<string, number[]>;
  reclaim?: ReclaimControls;
};

async function prepareTidepool(context: IpamContext): Promise<PreparedIpam> {
  const client = new TidepoolClient(context.kubeConfig);
  const pool = `bench-${context.tag}`;
  const [first, last] = hostRange('10.240.0.0/16', context.ips);
  await client.createPool(pool, { subnet: '10.240.0.0/16', ips: [`${first}-${last}`] });
  const readPool = async () => {
    const current = await client.getPool(pool);
    if (!current) throw new Error(`IPPool ${pool} is gone`);
    return current;
  };
  const netconf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'underlay',
    type: 'macvlan',
    ipam: { type: 'tidepool', agent_socket: context.tidepool.agentSocket, spool_dir: context.tidepool.spoolDir },
  });
  return {
    name: 'tidepool',
    binary: context.tidepool.cni,
    cniPath: '/opt/cni/bin',
    netconf: () => netconf,
    podAnnotations: { 'ipam.tidepool.dev/ippool': JSON.stringify({ ipv4: [pool] }) },
    allocatedIPs: async () => Object.keys((await client.getPool(pool))?.status?.allocatedIPs ?? {}),
    reclaim: {
      reclaimer: 'tidepool-worker',
      kill: async () => void (await stopComponent('tidepool-worker', 'SIGKILL')),
      restart: () => startComponent('tidepool-worker'),
      writeDirtyRecords: async (count, namespace) => {
        const range = ipsInRange(first, last);
        let written: string[] = [];
        await updateWithRetry(readPool, async (current: IPPool) => {
          const allocated = { ...current.status?.allocatedIPs };
          written = range.filter((ip) => !allocated[ip]).slice(0, count);
          if (written.length < count) throw new Error(`IPPool ${pool} has ${written.length} free IPs, not the ${count} asked for`);
          const allocatedAt = new Date().toISOString();
          written.forEach((ip, index) => {
            allocated[ip] = { pod: `${namespace}/ghost-${index}`, podUID: randomUUID(), containerID: randomBytes(32).toString('hex'), interface: 'eth0', node: context.nodes[0], allocatedAt };
          });
          await client.replacePoolStatus({ ...current, status: { ...current.status, allocatedIPs: allocated, allocatedIPCount: Object.keys(allocated).length } });
        });
        return written;
      },
    },
    cleanup: async () => {
      const left = await client.getPool(pool);
      if (left) await client.replacePoolStatus({ ...left, status: {} }).catch(() => undefined);
      await client.deletePool(pool).catch(() => undefined);
    },
  };
}

/**
 * host-local keeps its allocations in files on each node and never coordinates with other nodes, so each
 * node gets its own equal share of the IPs: the floor any cluster-wide IPAM is compared with.
 */
function prepareHostLocal(context: IpamContext): PreparedIpam {
  const dataDir = path.join(context.root, '.cache', 'bench', `host-local-${context.tag}`);
  const perNode = Math.ceil(context.ips / context.nodes.length);
  const netconfs = new Map(
    context.nodes.map((node, index) => {
      const [rangeStart, rangeEnd] = hostRange('10.241.0.0/16', Math.min(perNode, context.ips - index * perNode), index * perNode);
      return [
        node,
        JSON.stringify({
          cniVersion: '0.3.1',
          name: 'underlay',
          type: 'macvlan',
          // host-local never hands out the gateway, which defaults to the subnet's first address: put it outside the ranges.
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.241.0.0/16', rangeStart, rangeEnd, gateway: '10.241.255.254' }]], dataDir: path.join(dataDir, node) },
        }),
      ];
    }),
  );
  return {
    name: 'host-local',
    binary: path.join(context.peersDir, 'bin', 'host-local'),
    cniPath: path.join(context.peersDir, 'bin'),
    netconf: (node) => netconfs.get(node)!,
    allocatedIPs: async () =>
      context.nodes.flatMap((node) => {
        try {
          // One file per allocated IP, named by it, beside last_reserved_ip.0 and lock.
          return readdirSync(path.join(dataDir, node, 'underlay')).filter((file) => {
            try {
              parseIP(file);
              return true;
            } catch {
              return false;
            }
          });
        } catch {
          return [];
        }
      }),
    cleanup: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

interface WhereaboutsPool {
  metadata: { name: string };
  spec: { range: string; allocations?: Record<string, { podref?: string }> };
}

/** Whereabouts keeps every allocation of a range in one IPPool object, under a cluster-wide leader lease. */
async function prepareWhereabouts(context: IpamContext): Promise<PreparedIpam> {
  const dir = path.join(context.root, '.cache', 'bench', `whereabouts-${context.tag}`);
  mkdirSync(dir, { recursive: true });
  const flatConfig = path.join(dir, 'whereabouts.conf');
  // v0.8.0 reads its datastore settings from this file and refuses to run without one.
  writeFileSync(flatConfig, JSON.stringify({ datastore: 'kubernetes', kubernetes: { kubeconfig: context.kubeconfigPath } }));
  const range = '10.242.0.0/16';
  const [rangeStart, rangeEnd] = hostRange(range, context.ips);
  const netconf = JSON.stringify({
    cniVersion: '0.3.1',
    name: 'underlay',
    type: 'macvlan',
    ipam: {
      type: 'whereabouts',
      range,
      range_start: rangeStart,
      range_end: rangeEnd,
      kubernetes: { kubeconfig: context.kubeconfigPath },
      configuration_path: flatConfig,
      log_level: 'error',
      log_file: path.join(dir, 'whereabouts.log'),
    },
  });
  const custom = context.kubeConfig.makeApiClient(CustomObjectsApi);
  const group = { group: 'whereabouts.cni.cncf.io', version: 'v1alpha1', namespace: 'kube-system' };
  const pools = async () =>
    ((await custom.listNamespacedCustomObject({ ...group, plural: 'ippools' })) as { items: WhereaboutsPool[] }).items.filter((pool) => pool.spec.range === range);
  const network = parseSubnet(range);
  return {
    name: 'whereabouts',
    binary: path.join(context.peersDir, 'bin', 'whereabouts'),
    cniPath: path.join(context.peersDir, 'bin'),
    netconf: () => netconf,
    // Allocations are keyed by the offset from the range's network address.
    allocatedIPs: async () =>
      (await pools()).flatMap((pool) => Object.keys(pool.spec.allocations ?? {}).map((offset) => formatIP(network.family, network.first + BigInt(offset)))),
    cleanup: async () => {
      for (const pool of await pools()) await custom.deleteNamespacedCustomObject({ ...group, plural: 'ippools', name: pool.metadata.name }).catch(() => undefined);
      await custom.deleteCollectionNamespacedCustomObject({ ...group, plural: 'overlappingrangeipreservations' }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function prepareIpam(name: IpamName, context: IpamContext): Promise<PreparedIpam> {
  switch (name) {
    case 'tidepool':
      return prepareTidepool(context);
    case 'spiderpool':
      return prepareSpiderpool(context, context.spiderpool);
    case 'host-local':
      return prepareHostLocal(context);
    case 'whereabouts':
      return prepareWhereabouts(context);
  }
}
