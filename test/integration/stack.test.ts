import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError } from '../../src/k8s/errors.ts';
import { TidepoolClient } from '../../src/k8s/client.ts';
import type { IPPoolSpec } from '../../src/k8s/types.ts';
import { TidepoolIPs, TidepoolPod, TidepoolState } from '../../src/temporal/names.ts';
import { up } from '../../stack/stack.ts';
import { status } from '../../stack/stack.ts';
import { caCert, createNamespace, kubeConfig, kubectl, stack, temporalClient, waitFor } from '../harness/cluster.ts';
import { withWorker } from '../harness/worker.ts';

const suffix = randomBytes(3).toString('hex');

describe('kube-apiserver', () => {
  it('answers /readyz', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${stack().apiServer}/readyz`, { ca: caCert() }, (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () => (response.statusCode === 200 ? resolve(text) : reject(new Error(text))));
        })
        .on('error', reject);
    });
    expect(body).toBe('ok');
  });

  it('reports the pinned Kubernetes version', async () => {
    const version = JSON.parse(await kubectl('version', '-o', 'json')) as { serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toBe('v1.34.4');
  });

  it('`up` again is harmless: it keeps the running processes', async () => {
    const before = status().map((c) => c.pid);
    await up();
    expect(status().map((c) => c.pid)).toEqual(before);
  });
});

describe('IPPool schema', () => {
  const client = () => new TidepoolClient(kubeConfig());
  const created: string[] = [];
  afterAll(async () => {
    for (const name of created) await client().deletePool(name).catch(() => undefined);
  });

  async function rejection(spec: unknown): Promise<string> {
    const name = `bad-${randomBytes(3).toString('hex')}`;
    try {
      await client().createPool(name, spec as IPPoolSpec);
    } catch (error) {
      expect(error).toBeInstanceOf(KubeApiError);
      expect((error as KubeApiError).code).toBe(422);
      return (error as Error).message;
    }
    created.push(name);
    throw new Error(`the API server accepted ${JSON.stringify(spec)}`);
  }

  it.each([
    [{ subnet: '10.6.0.0/33', ips: ['10.6.0.1'] }, '10.6.0.0/33 is not a CIDR'],
    [{ subnet: 'ten-six', ips: ['10.6.0.1'] }, 'ten-six is not a CIDR'],
    [{ subnet: '10.6.0.5/16', ips: ['10.6.0.10'] }, 'host bits zero'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.300'] }, "range 'first-last'"],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1-10.6.0.9-10.6.0.12'] }, "range 'first-last'"],
    [{ subnet: '10.6.0.0/16', ips: ['10.7.0.1'] }, 'spec.ips: Invalid value: "object": 10.7.0.1 is outside spec.subnet 10.6.0.0/16'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1-10.7.0.1'] }, '10.6.0.1-10.7.0.1 is outside spec.subnet 10.6.0.0/16'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1'], excludeIPs: ['10.8.0.1'] }, 'spec.excludeIPs: Invalid value: "object": 10.8.0.1 is outside spec.subnet'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1'], gateway: '10.9.0.1' }, 'spec.gateway: Invalid value: "object": 10.9.0.1 is outside spec.subnet'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1'], ipVersion: 6 }, 'spec.ipVersion: Invalid value: "object": does not match spec.subnet 10.6.0.0/16'],
    [{ subnet: 'fd00:6::/64', ips: ['fd00:7::1'] }, 'fd00:7::1 is outside spec.subnet fd00:6::/64'],
    [{ subnet: '10.6.0.0/16', ips: [] }, 'should have at least 1 items'],
    [{ subnet: '10.6.0.0/16' }, 'spec.ips: Required value'],
    [{ subnet: '10.6.0.0/16', ips: ['10.6.0.1'], vlan: 5000 }, 'spec.vlan'],
  ])('rejects %j', async (spec, message) => {
    expect(await rejection(spec)).toContain(message);
  });

  it('stores a valid pool, keeps subnet immutable, and kubectl shows the printer columns', async () => {
    const name = `valid-${suffix}`;
    const pool = await client().createPool(name, {
      subnet: '10.6.0.0/16',
      ips: ['10.6.168.100-10.6.168.199', '10.6.168.201'],
      excludeIPs: ['10.6.168.150'],
      gateway: '10.6.0.1',
      default: true,
    });
    created.push(name);
    expect(pool.metadata.uid).toBeTruthy();

    pool.spec.subnet = '10.7.0.0/16';
    pool.spec.ips = ['10.7.0.10'];
    await expect(client().replacePool(pool)).rejects.toThrow('spec.subnet: Invalid value: "string": immutable, cannot change from');

    const table = await kubectl('get', 'ippools', name);
    const [header, row] = table.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'VERSION', 'SUBNET', 'ALLOCATED', 'TOTAL', 'DEFAULT', 'DISABLE', 'AGE']);
    expect(row).toMatch(new RegExp(`^${name}\\s+10\\.6\\.0\\.0/16\\s+true\\s+`));
    expect(await kubectl('get', 'tpp', name, '-o', 'name')).toBe(`ippool.tidepool.dev/${name}\n`);
  });

  it('accepts IPv6 pools', async () => {
    const name = `v6-${suffix}`;
    await client().createPool(name, { subnet: 'fd00:6::/64', ips: ['fd00:6::10-fd00:6::ff'], ipVersion: 6 });
    created.push(name);
    expect((await client().getPool(name))?.spec.ipVersion).toBe(6);
  });

  it('treats a stale resourceVersion as a conflict and a missing pool as undefined', async () => {
    const name = `rv-${suffix}`;
    const pool = await client().createPool(name, { subnet: '10.20.0.0/24', ips: ['10.20.0.10'] });
    created.push(name);
    await client().replacePoolStatus({ ...pool, status: { allocatedIPCount: 0, totalIPCount: 1 } });
    const stale = client().replacePoolStatus({ ...pool, status: { allocatedIPCount: 1, totalIPCount: 1 } });
    await expect(stale).rejects.toSatisfy((e: unknown) => e instanceof KubeApiError && e.conflict);
    expect(await client().getPool(`missing-${suffix}`)).toBeUndefined();
  });
});

describe('kube-controller-manager', () => {
  let namespace: Awaited<ReturnType<typeof createNamespace>>;
  beforeAll(async () => {
    namespace = await createNamespace('stack');
  });
  afterAll(async () => {
    await namespace.remove();
  });

  it('the replicaset controller creates the Pods of a 3-replica Deployment', async () => {
    const apps = kubeConfig().makeApiClient(AppsV1Api);
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const labels = { app: 'web' };
    await apps.createNamespacedDeployment({
      namespace: namespace.name,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 3,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: 'c', image: 'registry.invalid/pause:1' }] } },
        },
      },
    });
    await waitFor('3 pods of Deployment web', async () => {
      const pods = await core.listNamespacedPod({ namespace: namespace.name, labelSelector: 'app=web' });
      return pods.items.length === 3;
    });
    const pods = await core.listNamespacedPod({ namespace: namespace.name, labelSelector: 'app=web' });
    expect(new Set(pods.items.map((p) => p.metadata?.ownerReferences?.[0]?.kind))).toEqual(new Set(['ReplicaSet']));
  });

  it('the garbage collector deletes an object whose owner is deleted', async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({ namespace: namespace.name, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace: namespace.name,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: namespace.name, name: 'owner' });
    await waitFor('the garbage collector to delete ConfigMap dependent', async () => {
      try {
        await core.readNamespacedConfigMap({ namespace: namespace.name, name: 'dependent' });
        return false;
      } catch {
        return true;
      }
    });
  });
});

describe('Temporal', () => {
  it('is the one TIDEPOOL_TEMPORAL asks for: the real server on PostgreSQL, or the dev server on SQLite', async () => {
    const asked = { server: 'server', dev: 'dev', testcontainers: 'external' }[process.env.TIDEPOOL_TEMPORAL ?? ''];
    // Unset: the suite reuses whichever a running stack has, else starts the dev server.
    if (asked !== undefined) expect(stack().temporal).toBe(asked);
    const kind = stack().temporal;
    const { client, close } = await temporalClient();
    try {
      const info = await client.workflowService.getClusterInfo({});
      expect(info.persistenceStore).toBe(kind === 'server' ? 'postgres12' : 'sqlite');
      expect(info.visibilityStore).toBe(kind === 'server' ? 'postgres12' : 'sqlite');
      expect(info.serverVersion).toMatch(/^1\.32\./);
    } finally {
      await close();
    }
  });

  it('runs a workflow that a visibility query on custom search attributes finds', async () => {
    const { client, close } = await temporalClient();
    const taskQueue = `stack-test-${suffix}`;
    const ip = `10.250.${Number.parseInt(suffix.slice(0, 2), 16)}.${Number.parseInt(suffix.slice(2, 4), 16)}`;
    try {
      await withWorker(
        { taskQueue, workflowsPath: fileURLToPath(new URL('../fixtures/visibility-workflow.ts', import.meta.url)) },
        async () => {
          const result = await client.workflow.execute('reportState', {
            taskQueue,
            workflowId: `stack-test/${suffix}`,
            args: ['Allocated'],
            typedSearchAttributes: [
              { key: TidepoolPod, value: `stack/${suffix}` },
              { key: TidepoolIPs, value: [ip] },
            ],
          });
          expect(result).toBe('Allocated');
        },
      );
      const query = `TidepoolIPs = '${ip}' AND TidepoolState = 'Allocated'`;
      let found: string[] = [];
      await waitFor(`visibility to index ${query}`, async () => {
        found = [];
        for await (const execution of client.workflow.list({ query })) found.push(execution.workflowId);
        return found.length > 0;
      });
      expect(found).toEqual([`stack-test/${suffix}`]);
      const described = await client.workflow.getHandle(`stack-test/${suffix}`).describe();
      expect(described.typedSearchAttributes.get(TidepoolPod)).toBe(`stack/${suffix}`);
      expect(described.typedSearchAttributes.get(TidepoolState)).toBe('Allocated');
    } finally {
      await close();
    }
  });
});
