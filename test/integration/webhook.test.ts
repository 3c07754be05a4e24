import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError } from '../../src/k8s/errors.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import type { IPPool, IPPoolSpec, ReservedIPSpec } from '../../src/k8s/types.ts';
import { kubeConfig } from '../harness/cluster.ts';
import { startWebhook, type WebhookUnderTest } from '../harness/webhook.ts';

const client = () => new TidepoolClient(kubeConfig());
const pools: string[] = [];
const reservations: string[] = [];
let webhook: WebhookUnderTest;
let serial = 0;
const uniqueName = (prefix: string) => `${prefix}-${webhook.labels['tidepool.dev/webhook-test']}-${serial++}`;

async function createPool(spec: IPPoolSpec): Promise<IPPool> {
  const name = uniqueName('pool');
  const pool = await client().createPool(name, spec, webhook.labels);
  pools.push(name);
  return pool;
}

/** The API server's refusal message, failing the test if the object was admitted. */
async function refusal(write: () => Promise<unknown>, what: string): Promise<string> {
  try {
    await write();
  } catch (error) {
    expect(error).toBeInstanceOf(KubeApiError);
    return (error as Error).message;
  }
  throw new Error(`the API server admitted ${what}`);
}

const refusedPool = (spec: IPPoolSpec) =>
  refusal(async () => {
    const name = uniqueName('refused');
    await client().createPool(name, spec, webhook.labels);
    pools.push(name);
  }, `IPPool ${JSON.stringify(spec)}`);

const refusedReservation = (spec: ReservedIPSpec) =>
  refusal(async () => {
    const name = uniqueName('refused');
    await client().createReservedIP(name, spec, webhook.labels);
    reservations.push(name);
  }, `ReservedIP ${JSON.stringify(spec)}`);

/** A pool that holds `ip` for a pod, as the allocator would record it. */
async function poolHolding(spec: IPPoolSpec, ip: string, pod: string): Promise<IPPool> {
  const pool = await createPool(spec);
  return client().replacePoolStatus({ ...pool, status: { allocatedIPs: { [ip]: { pod, podUID: 'uid-1' } }, allocatedIPCount: 1 } });
}

beforeAll(async () => {
  webhook = await startWebhook({ refuseDeleteWithAllocatedIPs: true });
});

afterAll(async () => {
  await webhook?.stop();
  for (const name of pools) {
    const pool = await client().getPool(name);
    if (!pool) continue;
    await client().replacePoolStatus({ ...pool, status: {} }).catch(() => undefined);
    const fresh = await client().getPool(name);
    if (fresh) await client().replacePool({ ...fresh, metadata: { ...fresh.metadata, finalizers: [] } }).catch(() => undefined);
    await client().deletePool(name).catch(() => undefined);
  }
  for (const name of reservations) await client().reservedIPs.delete(name).catch(() => undefined);
});

describe('the mutating webhook, called by the real API server', () => {
  it('adds the ip-protection finalizer, defaults ipVersion from the subnet, and merges and sorts ranges', async () => {
    const pool = await createPool({ subnet: '10.94.0.0/24', ips: ['10.94.0.20-10.94.0.30', '10.94.0.10-10.94.0.19', '10.94.0.5'] });
    expect(pool.metadata.finalizers).toEqual(['tidepool.dev/ip-protection']);
    expect(pool.spec.ipVersion).toBe(4);
    expect(pool.spec.ips).toEqual(['10.94.0.5', '10.94.0.10-10.94.0.30']);
    const v6 = await createPool({ subnet: 'fd00:94::/64', ips: ['FD00:94::0010-fd00:94::20'] });
    expect(v6.spec.ipVersion).toBe(6);
    expect(v6.spec.ips).toEqual(['fd00:94::10-fd00:94::20']);
  });
});

describe('every IPPool create rule: a refused pool with a message naming field and value, and its valid neighbour accepted', () => {
  it.each<[string, IPPoolSpec, string, IPPoolSpec]>([
    ['subnet not a CIDR', { subnet: '10.94.1.0', ips: ['10.94.1.1'] }, 'spec.subnet: Invalid value: "string": 10.94.1.0 is not a CIDR', { subnet: '10.94.1.0/24', ips: ['10.94.1.1'] }],
    ['subnet with host bits', { subnet: '10.94.2.7/24', ips: ['10.94.2.1'] }, 'spec.subnet: Invalid value: "string": 10.94.2.7/24 has host bits set', { subnet: '10.94.2.0/24', ips: ['10.94.2.1'] }],
    ['ipVersion against the subnet', { subnet: '10.94.3.0/24', ipVersion: 6, ips: ['10.94.3.1'] }, 'spec.ipVersion: Invalid value: "object": does not match spec.subnet 10.94.3.0/24', { subnet: '10.94.3.0/24', ipVersion: 4, ips: ['10.94.3.1'] }],
    ['ips outside the subnet', { subnet: '10.94.4.0/24', ips: ['10.94.4.1', '10.94.5.1-10.94.5.3'] }, 'spec.ips: Invalid value: "object": 10.94.5.1-10.94.5.3 is outside spec.subnet 10.94.4.0/24', { subnet: '10.94.4.0/24', ips: ['10.94.4.1'] }],
    ['excludeIPs outside the subnet', { subnet: '10.94.6.0/24', ips: ['10.94.6.1-10.94.6.9'], excludeIPs: ['10.94.7.1'] }, 'spec.excludeIPs: Invalid value: "object": 10.94.7.1 is outside spec.subnet 10.94.6.0/24', { subnet: '10.94.6.0/24', ips: ['10.94.6.1-10.94.6.9'], excludeIPs: ['10.94.6.2'] }],
    ['a range that ends before it starts', { subnet: '10.94.8.0/24', ips: ['10.94.8.9-10.94.8.1'] }, 'spec.ips: "10.94.8.9-10.94.8.1" ends before it starts', { subnet: '10.94.8.0/24', ips: ['10.94.8.1-10.94.8.9'] }],
    ['a gateway outside the subnet', { subnet: '10.94.9.0/24', ips: ['10.94.9.2'], gateway: '10.94.10.1' }, 'spec.gateway: Invalid value: "object": 10.94.10.1 is outside spec.subnet 10.94.9.0/24', { subnet: '10.94.9.0/24', ips: ['10.94.9.2'], gateway: '10.94.9.1' }],
    ['an allocatable gateway', { subnet: '10.94.11.0/24', ips: ['10.94.11.1-10.94.11.9'], gateway: '10.94.11.1' }, 'spec.gateway: 10.94.11.1 is also in spec.ips', { subnet: '10.94.11.0/24', ips: ['10.94.11.1-10.94.11.9'], excludeIPs: ['10.94.11.1'], gateway: '10.94.11.1' }],
    ['a route gw outside the subnet', { subnet: '10.94.12.0/24', ips: ['10.94.12.2'], routes: [{ dst: '172.16.0.0/12', gw: '10.94.13.1' }] }, 'spec.routes: Invalid value: "object": gw 10.94.13.1 is outside spec.subnet 10.94.12.0/24', { subnet: '10.94.12.0/24', ips: ['10.94.12.2'], routes: [{ dst: '172.16.0.0/12', gw: '10.94.12.1' }] }],
    ['a default route', { subnet: '10.94.14.0/24', ips: ['10.94.14.2'], routes: [{ dst: '0.0.0.0/0', gw: '10.94.14.1' }] }, 'spec.routes[0].dst: 0.0.0.0/0 is a default route', { subnet: '10.94.14.0/24', ips: ['10.94.14.2'], gateway: '10.94.14.1' }],
    ['a route of the other family', { subnet: '10.94.15.0/24', ips: ['10.94.15.2'], routes: [{ dst: 'fd00::/8', gw: '10.94.15.1' }] }, 'spec.routes[0].dst: fd00::/8 is not IPv4', { subnet: '10.94.15.0/24', ips: ['10.94.15.2'], routes: [{ dst: '192.168.0.0/16', gw: '10.94.15.1' }] }],
    ['a route twice', { subnet: '10.94.16.0/24', ips: ['10.94.16.2'], routes: [{ dst: '172.16.0.0/12', gw: '10.94.16.1' }, { dst: '172.16.0.0/12', gw: '10.94.16.3' }] }, 'spec.routes[1].dst: 172.16.0.0/12 appears twice', { subnet: '10.94.16.0/24', ips: ['10.94.16.2'], routes: [{ dst: '172.16.0.0/12', gw: '10.94.16.1' }, { dst: '172.17.0.0/16', gw: '10.94.16.3' }] }],
  ])('%s', async (_rule, refused, message, neighbour) => {
    expect(await refusedPool(refused)).toContain(message);
    await createPool(neighbour);
  });

  it('no IP shared with another pool of the same subnet', async () => {
    const first = await createPool({ subnet: '10.94.20.0/24', ips: ['10.94.20.1-10.94.20.9'] });
    expect(await refusedPool({ subnet: '10.94.20.0/24', ips: ['10.94.20.5-10.94.20.20'] })).toContain(`spec.ips: 10.94.20.5-10.94.20.9 also in IPPool ${first.metadata.name}`);
    await createPool({ subnet: '10.94.20.0/24', ips: ['10.94.20.10-10.94.20.20'] });
  });

  it('no subnet overlapping a different subnet', async () => {
    const first = await createPool({ subnet: '10.94.22.0/24', ips: ['10.94.22.1'] });
    expect(await refusedPool({ subnet: '10.94.22.0/23', ips: ['10.94.23.1'] })).toContain(
      `spec.subnet: 10.94.22.0/23 overlaps IPPool ${first.metadata.name}'s subnet 10.94.22.0/24`,
    );
    await createPool({ subnet: '10.94.23.0/24', ips: ['10.94.23.1'] });
  });
});

describe('every IPPool update and delete rule', () => {
  it('subnet and ipVersion are immutable; other fields change', async () => {
    const pool = await createPool({ subnet: '10.94.30.0/24', ips: ['10.94.30.1-10.94.30.9'] });
    expect(await refusal(() => client().replacePool({ ...pool, spec: { ...pool.spec, subnet: '10.94.31.0/24', ips: ['10.94.31.1'] } }), 'a new subnet')).toContain('spec.subnet: Invalid value: "string": immutable, cannot change from 10.94.30.0/24 to 10.94.31.0/24');
    expect(await refusal(() => client().replacePool({ ...pool, spec: { ...pool.spec, ipVersion: 6 } }), 'a new ipVersion')).toContain('ipVersion is immutable');
    const grown = await client().replacePool({ ...pool, spec: { ...pool.spec, ips: ['10.94.30.1-10.94.30.20'] } });
    expect(grown.spec.ips).toEqual(['10.94.30.1-10.94.30.20']);
  });

  it('an update may not remove an allocated IP (naming IP and pod), and may remove free ones', async () => {
    const pool = await poolHolding({ subnet: '10.94.32.0/24', ips: ['10.94.32.1-10.94.32.9'] }, '10.94.32.5', 'shop/web-0');
    expect(await refusal(() => client().replacePool({ ...pool, spec: { ...pool.spec, ips: ['10.94.32.6-10.94.32.9'] } }), 'removing a held IP')).toContain(
      'spec.ips: the update removes allocated IPs: 10.94.32.5 (held by shop/web-0)',
    );
    expect(await refusal(() => client().replacePool({ ...pool, spec: { ...pool.spec, excludeIPs: ['10.94.32.5'] } }), 'excluding a held IP')).toContain(
      '10.94.32.5 (held by shop/web-0)',
    );
    await client().replacePool({ ...pool, spec: { ...pool.spec, ips: ['10.94.32.5-10.94.32.9'] } });
  });

  it('a delete is refused while IPs are allocated, with the count and the first holders; an empty pool is deleted', async () => {
    const busy = await poolHolding({ subnet: '10.94.34.0/24', ips: ['10.94.34.1-10.94.34.9'] }, '10.94.34.3', 'shop/web-1');
    expect(await refusal(() => client().deletePool(busy.metadata.name), 'deleting a busy pool')).toContain(
      `IPPool ${busy.metadata.name} has 1 allocated IP, first 10.94.34.3 (shop/web-1)`,
    );
    expect((await client().getPool(busy.metadata.name))?.metadata.deletionTimestamp).toBeUndefined();
    const empty = await createPool({ subnet: '10.94.35.0/24', ips: ['10.94.35.1'] });
    await client().deletePool(empty.metadata.name);
    expect((await client().getPool(empty.metadata.name))?.metadata.deletionTimestamp).toBeDefined();
  });

  it("a terminating pool's spec is frozen, while its status and finalizers still change", async () => {
    const pool = await createPool({ subnet: '10.94.36.0/24', ips: ['10.94.36.1-10.94.36.9'] });
    await client().deletePool(pool.metadata.name);
    const terminating = (await client().getPool(pool.metadata.name))!;
    expect(terminating.metadata.deletionTimestamp).toBeDefined();
    expect(await refusal(() => client().replacePool({ ...terminating, spec: { ...terminating.spec, ips: ['10.94.36.1-10.94.36.20'] } }), 'a terminating pool grown')).toContain(
      `IPPool ${pool.metadata.name} is being deleted; its spec cannot change`,
    );
    const withStatus = await client().replacePoolStatus({ ...terminating, status: { allocatedIPCount: 0, totalIPCount: 9 } });
    await client().replacePool({ ...withStatus, metadata: { ...withStatus.metadata, finalizers: [] } });
    expect(await client().getPool(pool.metadata.name)).toBeUndefined();
  });
});

describe('every ReservedIP rule', () => {
  it.each<[string, ReservedIPSpec, string, ReservedIPSpec]>([
    ['not an IP', { ips: ['10.94.40.1', 'ten'] }, "must be an IP address or a range 'first-last'", { ips: ['10.94.40.1'] }],
    ['a range that ends before it starts', { ips: ['10.94.40.9-10.94.40.1'] }, 'spec.ips[0]: "10.94.40.9-10.94.40.1" ends before it starts', { ips: ['10.94.40.1-10.94.40.9'] }],
    ['a range across families', { ips: ['10.94.40.1-fd00::1'] }, 'spec.ips[0]', { ips: ['fd00:94::1-fd00:94::9'] }],
    ['IPv4 and IPv6 mixed', { ips: ['10.94.40.1', 'fd00:94::1'] }, 'spec.ips: mixes IPv4 and IPv6; use one ReservedIP per family', { ips: ['fd00:94::1'], ipVersion: 6 }],
    ['ipVersion against the IPs', { ips: ['10.94.40.1'], ipVersion: 6 }, 'spec.ipVersion: 6 does not match spec.ips, which are IPv4', { ips: ['10.94.40.1'], ipVersion: 4 }],
  ])('%s', async (_rule, refused, message, neighbour) => {
    expect(await refusedReservation(refused)).toContain(message);
    const name = uniqueName('reserved');
    await client().createReservedIP(name, neighbour, webhook.labels);
    reservations.push(name);
  });

  it('an update is checked like a create', async () => {
    const name = uniqueName('reserved');
    const reserved = await client().createReservedIP(name, { ips: ['10.94.41.1'] }, webhook.labels);
    reservations.push(name);
    expect(await refusal(() => client().reservedIPs.replace({ ...reserved, spec: { ips: ['10.94.41.1', 'fd00:94::1'] } }), 'a mixed update')).toContain('mixes IPv4 and IPv6');
  });
});

describe('the webhook process', () => {
  it('logs each decision with what it refused and why', () => {
    const refusals = webhook.log.map((line) => JSON.parse(line) as { msg: string; allowed?: boolean; message?: string }).filter((entry) => entry.msg === 'admission decision' && entry.allowed === false);
    expect(refusals.some((entry) => entry.message?.includes('spec.gateway: 10.94.11.1 is also in spec.ips'))).toBe(true);
  });
});
