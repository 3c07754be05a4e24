// Renders the Helm chart (deploy/helm/tidepool) with Helm built from the Go module proxy, validates every
// object against the local kube-apiserver's schemas, applies the CRDs and RBAC for real and checks each
// component's ServiceAccount can do what its code does and no more. Also loads docker-compose.yml with
// compose-go, the loader of `docker compose`.
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { webhookConfigurations } from '../../src/webhook/registration.ts';
import { stackConfig } from '../../stack/config.ts';
import { kubectl, stack, waitFor } from '../harness/cluster.ts';

const run = promisify(execFile);
const CHART = path.join(stackConfig.root, 'deploy', 'helm', 'tidepool');
const CERT_MANAGER_CRDS = path.join(path.dirname(stackConfig.binDir), 'cert-manager-crds');
const tool = (name: string) => path.join(stackConfig.binDir, name);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [field: string]: unknown;
}

// One release per run: its cluster-scoped names (ClusterRoles, webhook configurations) are its own.
const release = `tp-${randomBytes(3).toString('hex')}`;
const namespace = `${release}-system`;
const fullname = `${release}-tidepool`;
const scratch = mkdtempSync(path.join(tmpdir(), 'tidepool-deploy-'));
let kubeVersion: string;

async function helm(...args: string[]): Promise<string> {
  const { stdout } = await run(tool('helm'), args, {
    env: { ...process.env, KUBECONFIG: stack().kubeconfig, HELM_CACHE_HOME: scratch, HELM_CONFIG_HOME: scratch, HELM_DATA_HOME: scratch },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** `helm template` of the chart into this run's namespace, with the live API server's version. */
async function render(...args: string[]): Promise<K8sObject[]> {
  const text = await helm('template', release, CHART, '--namespace', namespace, '--kube-version', kubeVersion, ...args);
  return parseAllDocuments(text)
    .map((document) => document.toJS() as K8sObject | null)
    .filter((object): object is K8sObject => object !== null);
}

function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
}

/** Server-side dry run with strict field validation: the API server's own schemas judge every object. */
async function expectAccepted(objects: K8sObject[]): Promise<void> {
  const file = path.join(scratch, `objects-${randomBytes(3).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  const output = await kubectl('apply', '--dry-run=server', '--validate=strict', '-f', file);
  expect(output.match(/\(server dry run\)/g)).toHaveLength(objects.length);
}

async function apply(objects: K8sObject[]): Promise<void> {
  const file = path.join(scratch, `apply-${randomBytes(3).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  await kubectl('apply', '--server-side', '--field-manager', 'tidepool-deploy-test', '-f', file);
}

type Env = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
function containerEnv(workload: K8sObject, container: string): Env[] {
  const spec = (workload.spec as { template: { spec: { containers: { name: string; env: Env[] }[] } } }).template.spec;
  return spec.containers.find((c) => c.name === container)!.env;
}

beforeAll(async () => {
  const version = JSON.parse(await kubectl('version', '-o', 'json')) as { serverVersion: { gitVersion: string } };
  kubeVersion = version.serverVersion.gitVersion;
  await kubectl('create', 'namespace', namespace);
});

afterAll(async () => {
  await kubectl('delete', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${release}`, '--ignore-not-found', '--wait=false');
  await kubectl('delete', 'namespace', namespace, '--ignore-not-found', '--wait=false');
  rmSync(scratch, { recursive: true, force: true });
});

describe('the Helm chart', () => {
  it('passes helm lint --strict with the default values and with Temporal TLS and an API key', async () => {
    await helm('lint', '--strict', '--kube-version', kubeVersion, CHART);
    await helm('lint', '--strict', '--kube-version', kubeVersion, CHART, '--set', 'temporal.tls.caSecret=temporal-ca,temporal.apiKey.secretName=temporal-api-key');
  });

  it('ships the CRDs the local stack installs, which the API server accepts with strict validation', async () => {
    expect(readdirSync(path.join(CHART, 'crds')).sort()).toEqual(['ippools.yaml', 'podendpoints.yaml', 'reservedips.yaml']);
    expect(stackConfig.crdDir).toBe(path.join(CHART, 'crds'));
    // Strict: a key the schema does not declare (say, one a YAML slip made) is an error, not a silent drop.
    const output = await kubectl('apply', '--dry-run=server', '--validate=strict', '-f', path.join(CHART, 'crds'));
    expect(output.match(/\(server dry run\)/g)).toHaveLength(3);
  });

  it('renders objects the API server accepts with strict validation, with a generated webhook certificate by default', async () => {
    const objects = await render();
    expect(objects.map((object) => object.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'DaemonSet',
      'Deployment',
      'Deployment',
      'MutatingWebhookConfiguration',
      'PodDisruptionBudget',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Secret',
      'Service',
      'ServiceAccount',
      'ServiceAccount',
      'ServiceAccount',
      'ValidatingWebhookConfiguration',
    ]);
    await expectAccepted(objects);

    // The generated CA signed the serving certificate for the Service's DNS name, and both webhook
    // configurations trust that CA.
    const secret = only(objects, 'Secret') as K8sObject & { data: Record<string, string> };
    const ca = new X509Certificate(Buffer.from(secret.data['ca.crt']!, 'base64'));
    const serving = new X509Certificate(Buffer.from(secret.data['tls.crt']!, 'base64'));
    expect(serving.verify(ca.publicKey)).toBe(true);
    expect(serving.checkHost(`${fullname}-webhook.${namespace}.svc`)).toBe(`${fullname}-webhook.${namespace}.svc`);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const { webhooks } = only(objects, kind) as K8sObject & { webhooks: { clientConfig: { caBundle: string } }[] };
      expect(webhooks[0]!.clientConfig.caBundle).toBe(secret.data['ca.crt']);
    }
  });

  it('runs its pods on the node network, since they cannot wait for an IP from the IPAM they are; the worker and webhook can leave it', async () => {
    type PodSpec = { hostNetwork?: boolean; dnsPolicy?: string };
    const podSpec = (object: K8sObject) => (object.spec as { template: { spec: PodSpec } }).template.spec;
    const workloads = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'DaemonSet' || o.kind === 'Deployment');
    for (const workload of workloads(await render())) {
      expect([workload.metadata.name, podSpec(workload).hostNetwork, podSpec(workload).dnsPolicy]).toEqual([workload.metadata.name, true, 'ClusterFirstWithHostNet']);
    }
    const onPodNetwork = workloads(await render('--set', 'hostNetwork=false'));
    expect(onPodNetwork.map((w) => [w.kind, podSpec(w).hostNetwork ?? false]).sort()).toEqual([
      ['DaemonSet', true],
      ['Deployment', false],
      ['Deployment', false],
    ]);
  });

  it('routes admission exactly as src/webhook/registration.ts does', async () => {
    const objects = await render();
    const expected = webhookConfigurations({ name: fullname, clientConfig: () => ({}) });
    for (const [kind, configuration, webhookPath] of [
      ['MutatingWebhookConfiguration', expected.mutating, '/mutate'],
      ['ValidatingWebhookConfiguration', expected.validating, '/validate'],
    ] as const) {
      const rendered = only(objects, kind) as K8sObject & { webhooks: { clientConfig: { service: unknown } }[] };
      const withoutClient = (webhooks: readonly object[]) => webhooks.map((webhook) => ({ ...webhook, clientConfig: undefined }));
      expect(rendered.metadata.name).toBe(configuration.metadata!.name);
      expect(withoutClient(rendered.webhooks)).toEqual(withoutClient(configuration.webhooks!));
      expect(rendered.webhooks[0]!.clientConfig.service).toEqual({ name: `${fullname}-webhook`, namespace, path: webhookPath, port: 443 });
    }
  });

  it('keeps the generated certificate on an upgrade: the Secret in the cluster is reused', async () => {
    const secret = only(await render(), 'Secret');
    await apply([secret]);
    // --dry-run=server lets the chart's lookup read the cluster, as helm upgrade does.
    const again = only(await render('--dry-run=server'), 'Secret');
    expect(again.data).toEqual(secret.data);
    expect(only(await render(), 'Secret').data).not.toEqual(secret.data);
  });

  describe('with cert-manager in the cluster', () => {
    const crdFiles = ['cert-manager.io_certificates.yaml', 'cert-manager.io_issuers.yaml'];
    beforeAll(async () => {
      // cert-manager's own CRDs, from its Go module (stack/build-deploy-tools.sh), so its kinds are validated too.
      for (const file of crdFiles) await kubectl('apply', '--server-side', '-f', path.join(CERT_MANAGER_CRDS, file));
      for (const crd of ['certificates.cert-manager.io', 'issuers.cert-manager.io']) {
        // Until the API server sets the CRD's first conditions, kubectl's filter fails on their absence: not yet.
        await waitFor(`CRD ${crd} Established`, async () =>
          (await kubectl('get', 'crd', crd, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}').catch(() => '')) === 'True',
        );
      }
    });
    afterAll(async () => {
      for (const file of crdFiles) await kubectl('delete', '--ignore-not-found', '-f', path.join(CERT_MANAGER_CRDS, file));
    });

    it('asks cert-manager for the certificate and its cainjector for the caBundle instead of generating them', async () => {
      expect(existsSync(CERT_MANAGER_CRDS)).toBe(true);
      const objects = await render('--api-versions', 'cert-manager.io/v1');
      expect(objects.filter((object) => object.kind === 'Secret')).toEqual([]);
      const certificate = only(objects, 'Certificate') as K8sObject & { spec: { secretName: string; dnsNames: string[]; issuerRef: unknown } };
      expect(certificate.spec.secretName).toBe(`${fullname}-webhook-tls`);
      expect(certificate.spec.dnsNames).toContain(`${fullname}-webhook.${namespace}.svc`);
      expect(certificate.spec.issuerRef).toEqual({ kind: 'Issuer', name: only(objects, 'Issuer').metadata.name });
      for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
        const configuration = only(objects, kind) as K8sObject & { webhooks: { clientConfig: Record<string, unknown> }[] };
        expect(configuration.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(`${namespace}/${certificate.metadata.name}`);
        expect(configuration.webhooks[0]!.clientConfig.caBundle).toBeUndefined();
      }
      await expectAccepted(objects);
    });
  });

  it('connects the worker and the agent to Temporal with TLS, a client certificate and an API key from Secrets', async () => {
    const objects = await render(
      '--set',
      'temporal.address=tidepool.a1b2c.tmprl.cloud:7233,temporal.namespace=tidepool.a1b2c,temporal.tls.serverName=tidepool.a1b2c.tmprl.cloud',
      '--set',
      'temporal.tls.caSecret=temporal-ca,temporal.tls.clientCertSecret=temporal-client,temporal.apiKey.secretName=temporal-api-key',
    );
    await expectAccepted(objects);
    for (const [kind, name, container] of [
      ['Deployment', `${fullname}-worker`, 'worker'],
      ['DaemonSet', `${fullname}-agent`, 'agent'],
    ] as const) {
      const env = containerEnv(only(objects, kind, name), container);
      expect(env).toEqual(
        expect.arrayContaining([
          { name: 'TEMPORAL_ADDRESS', value: 'tidepool.a1b2c.tmprl.cloud:7233' },
          { name: 'TEMPORAL_NAMESPACE', value: 'tidepool.a1b2c' },
          { name: 'TEMPORAL_TLS', value: 'true' },
          { name: 'TEMPORAL_TLS_SERVER_NAME', value: 'tidepool.a1b2c.tmprl.cloud' },
          { name: 'TEMPORAL_TLS_CA_FILE', value: '/etc/tidepool/temporal-ca/ca.crt' },
          { name: 'TEMPORAL_TLS_CERT_FILE', value: '/etc/tidepool/temporal-client/tls.crt' },
          { name: 'TEMPORAL_TLS_KEY_FILE', value: '/etc/tidepool/temporal-client/tls.key' },
          { name: 'TEMPORAL_API_KEY', valueFrom: { secretKeyRef: { name: 'temporal-api-key', key: 'api-key' } } },
        ]),
      );
    }
    // Without those values nothing about TLS or an API key is rendered.
    const plain = containerEnv(only(await render(), 'Deployment', `${fullname}-worker`), 'worker').map((entry) => entry.name);
    expect(plain.filter((name) => name.startsWith('TEMPORAL_'))).toEqual(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE']);
  });

  it('fails to render with an unknown certificate source', async () => {
    await expect(render('--set', 'webhook.certificate.source=vault')).rejects.toThrow(
      'webhook.certificate.source must be auto, certManager or generated, not "vault"',
    );
  });
});

describe('the chart RBAC applied to the API server', () => {
  const as = (component: 'worker' | 'agent' | 'webhook') => `system:serviceaccount:${namespace}:${fullname}-${component}`;

  beforeAll(async () => {
    const objects = await render();
    await apply(objects.filter((object) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(object.kind)));
    // RBAC is enforced from the authorizer's watch cache: wait until the worker's binding is in effect.
    await waitFor('the worker bindings to take effect', async () => (await canI(as('worker'), 'list', 'pods')) && (await canI(as('worker'), 'update', 'leases.coordination.k8s.io')));
  });

  async function canI(subject: string, verb: string, resource: string, subresource?: string): Promise<boolean> {
    const args = ['auth', 'can-i', verb, resource, `--as=${subject}`, '--namespace', namespace, ...(subresource ? [`--subresource=${subresource}`] : [])];
    try {
      return (await kubectl(...args)).trim() === 'yes';
    } catch (error) {
      // can-i exits 1 for "no" with "no" on stdout; anything else is a real failure.
      if ((error as { stdout?: string }).stdout?.trim() === 'no') return false;
      throw error;
    }
  }

  // [component, verb, resource, subresource, allowed]: what the code in src/ does (allowed) and some of
  // what it must not be able to do.
  const expectations: [component: 'worker' | 'agent' | 'webhook', verb: string, resource: string, subresource: string | undefined, allowed: boolean][] = [
    ['worker', 'watch', 'pods', undefined, true],
    ['worker', 'get', 'nodes', undefined, true],
    ['worker', 'watch', 'namespaces', undefined, true],
    ['worker', 'list', 'statefulsets.apps', undefined, true],
    ['worker', 'get', 'statefulsets.apps', undefined, true],
    ['worker', 'watch', 'statefulsets.apps', undefined, true],
    ['worker', 'update', 'statefulsets.apps', undefined, false],
    ['worker', 'update', 'ippools.tidepool.dev', 'status', true],
    ['worker', 'update', 'ippools.tidepool.dev', undefined, true],
    ['worker', 'update', 'reservedips.tidepool.dev', 'status', true],
    ['worker', 'create', 'podendpoints.tidepool.dev', undefined, true],
    ['worker', 'delete', 'podendpoints.tidepool.dev', undefined, true],
    ['worker', 'delete', 'pods', undefined, false],
    ['worker', 'update', 'pods', undefined, false],
    ['worker', 'update', 'nodes', undefined, false],
    ['worker', 'create', 'ippools.tidepool.dev', undefined, false],
    ['worker', 'delete', 'ippools.tidepool.dev', undefined, false],
    ['worker', 'update', 'reservedips.tidepool.dev', undefined, false],
    ['worker', 'get', 'secrets', undefined, false],
    ['worker', 'update', 'leases.coordination.k8s.io', undefined, true],
    ['worker', 'create', 'leases.coordination.k8s.io', undefined, true],
    ['worker', 'delete', 'leases.coordination.k8s.io', undefined, false],
    ['agent', 'update', 'leases.coordination.k8s.io', undefined, false],
    ['agent', 'get', 'pods', undefined, false],
    ['agent', 'delete', 'pods', undefined, false],
    ['agent', 'list', 'ippools.tidepool.dev', undefined, false],
    ['agent', 'update', 'ippools.tidepool.dev', 'status', false],
    ['agent', 'create', 'podendpoints.tidepool.dev', undefined, false],
    ['webhook', 'list', 'ippools.tidepool.dev', undefined, true],
    ['webhook', 'update', 'ippools.tidepool.dev', undefined, false],
    ['webhook', 'update', 'ippools.tidepool.dev', 'status', false],
    ['webhook', 'get', 'pods', undefined, false],
    ['webhook', 'list', 'reservedips.tidepool.dev', undefined, false],
    ['webhook', 'get', 'secrets', undefined, false],
  ];

  it('grants each component the verbs its code uses and refuses the rest', async () => {
    const answers = await Promise.all(
      expectations.map(async ([component, verb, resource, subresource]) => {
        const allowed = await canI(as(component), verb, resource, subresource);
        return `${component} ${verb} ${resource}${subresource ? `/${subresource}` : ''}: ${allowed}`;
      }),
    );
    expect(answers).toEqual(
      expectations.map(([component, verb, resource, subresource, allowed]) => `${component} ${verb} ${resource}${subresource ? `/${subresource}` : ''}: ${allowed}`),
    );
  });
});

describe('docker-compose.yml', () => {
  it('loads with compose-go, with the Tidepool worker beside Temporal, PostgreSQL and the UI', async () => {
    const { stdout } = await run(tool('compose-check'), [path.join(stackConfig.root, 'docker-compose.yml')], {
      env: { ...process.env, TIDEPOOL_KUBECONFIG: stack().kubeconfig },
    });
    expect(stdout.trim().split('\n')).toEqual(['postgresql', 'temporal', 'temporal-search-attributes', 'temporal-ui', 'tidepool-worker']);
  });

  it('is refused by the same loader when a service depends on one that does not exist', async () => {
    const file = path.join(scratch, 'docker-compose.yml');
    writeFileSync(file, 'services:\n  worker:\n    image: tidepool\n    depends_on: [temporal]\n');
    await expect(run(tool('compose-check'), [file])).rejects.toThrow('service "worker" depends on undefined service "temporal"');
  });
});
