import { dumpYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readManifests } from '../../src/k8s/apply.ts';

interface SchemaNode {
  'x-kubernetes-validations'?: { rule: string }[];
  properties?: Record<string, SchemaNode>;
}

describe('readManifests', () => {
  const crds = readManifests('deploy/helm/tidepool/crds');

  it('reads the three Tidepool CRDs', () => {
    expect(crds.map((crd) => crd.metadata?.name)).toEqual([
      'ippools.tidepool.dev',
      'podendpoints.tidepool.dev',
      'reservedips.tidepool.dev',
    ]);
  });

  it('keeps x-kubernetes-validations through the typed serializer that KubernetesObjectApi sends with', () => {
    // dumpYaml serializes through the same ObjectSerializer model as KubernetesObjectApi.patch.
    const plain = parse(dumpYaml(crds[0])) as {
      spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
    };
    const spec = plain.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    expect(spec['x-kubernetes-validations']?.length).toBeGreaterThan(0);
    expect(spec.properties!.subnet!['x-kubernetes-validations']?.map((v) => v.rule)).toContain('isCIDR(self)');
  });
});
