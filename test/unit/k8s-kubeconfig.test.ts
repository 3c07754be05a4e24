import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.ts';

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443', certificate-authority-data: ${Buffer.from('-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n').toString('base64')} } }]
users: [{ name: u, user: { token: secret } }]
contexts: [{ name: ctx, context: { cluster: c, user: u } }]
current-context: ctx
`;

describe('loadKubeConfig', () => {
  it('hands every API call the same dispatcher, so connections are reused instead of a TLS handshake per call', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'kubeconfig-')), 'config');
    writeFileSync(file, kubeconfig);
    const kubeConfig = loadKubeConfig(file);
    const dispatchers: unknown[] = [];
    const context = () => ({ setHeaderParam: () => undefined, setDispatcher: (dispatcher: unknown) => void dispatchers.push(dispatcher) });
    await kubeConfig.applySecurityAuthentication(context() as never);
    await kubeConfig.applySecurityAuthentication(context() as never);
    expect(dispatchers).toHaveLength(2);
    expect(dispatchers[0]).toBeDefined();
    expect(dispatchers[1]).toBe(dispatchers[0]);
  });

  it('names the file it could not load', () => {
    expect(() => loadKubeConfig('/nonexistent/kubeconfig')).toThrow('cannot load kubeconfig /nonexistent/kubeconfig');
  });
});
