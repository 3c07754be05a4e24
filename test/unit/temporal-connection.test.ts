import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { loadTemporalConnection } from '../../src/config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-temporal-tls-'));
const file = (name: string, text: string) => {
  const target = path.join(dir, name);
  writeFileSync(target, text);
  return target;
};
const ca = file('ca.crt', 'CA PEM');
const cert = file('tls.crt', 'CERT PEM');
const key = file('tls.key', 'KEY PEM');

function withEnv(values: Record<string, string>) {
  for (const name of ['TEMPORAL_TLS', 'TEMPORAL_TLS_CA_FILE', 'TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_KEY_FILE', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_API_KEY']) {
    vi.stubEnv(name, values[name] ?? '');
  }
  vi.stubEnv('TEMPORAL_ADDRESS', values.TEMPORAL_ADDRESS ?? 'temporal.example:7233');
}

afterEach(() => vi.unstubAllEnvs());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the Temporal connection settings', () => {
  it('is plain gRPC to the address when nothing else is set', () => {
    withEnv({});
    expect(loadTemporalConnection()).toEqual({ address: 'temporal.example:7233' });
  });

  it('reads the CA, the client certificate pair and the server name for mutual TLS', () => {
    withEnv({ TEMPORAL_TLS_CA_FILE: ca, TEMPORAL_TLS_CERT_FILE: cert, TEMPORAL_TLS_KEY_FILE: key, TEMPORAL_TLS_SERVER_NAME: 'frontend.temporal' });
    expect(loadTemporalConnection()).toEqual({
      address: 'temporal.example:7233',
      tls: {
        serverNameOverride: 'frontend.temporal',
        serverRootCACertificate: Buffer.from('CA PEM'),
        clientCertPair: { crt: Buffer.from('CERT PEM'), key: Buffer.from('KEY PEM') },
      },
    });
  });

  it('turns TLS on with the system roots for an API key, and keeps it off when TEMPORAL_TLS=false says so', () => {
    withEnv({ TEMPORAL_API_KEY: 'secret\n' });
    expect(loadTemporalConnection()).toEqual({ address: 'temporal.example:7233', tls: {}, apiKey: 'secret' });
    withEnv({ TEMPORAL_API_KEY: 'secret', TEMPORAL_TLS: 'false' });
    expect(loadTemporalConnection()).toEqual({ address: 'temporal.example:7233', tls: false, apiKey: 'secret' });
    withEnv({ TEMPORAL_TLS: 'true' });
    expect(loadTemporalConnection()).toEqual({ address: 'temporal.example:7233', tls: {} });
  });

  it.each([
    [{ TEMPORAL_TLS_CERT_FILE: cert }, 'give both or neither'],
    [{ TEMPORAL_TLS_CA_FILE: path.join(dir, 'missing.crt') }, 'TEMPORAL_TLS_CA_FILE="' + path.join(dir, 'missing.crt') + '" cannot be read: ENOENT'],
    [{ TEMPORAL_TLS_CA_FILE: ca, TEMPORAL_TLS: 'false' }, 'TEMPORAL_TLS=false contradicts'],
    [{ TEMPORAL_TLS: 'maybe' }, 'TEMPORAL_TLS="maybe" is not true or false'],
  ])('rejects %j', (values, message) => {
    withEnv(values);
    expect(() => loadTemporalConnection()).toThrow(message);
  });
});
