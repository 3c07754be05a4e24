// The Temporal connection settings against a real TLS endpoint: a TLS terminator (the stack's serving
// certificate, for 127.0.0.1 and localhost, signed by the stack's CA) in front of the dev server, which
// itself speaks plain gRPC only.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadTemporalConnection } from '../../src/config.ts';
import { stackConfig, stackPaths } from '../../stack/config.ts';
import { stack } from '../harness/cluster.ts';

let terminator: tls.Server;
let address: string;
let handshakes = 0;
const refusedHandshakes: string[] = [];

beforeAll(async () => {
  const paths = stackPaths(stackConfig);
  const [backendHost, backendPort] = [stack().temporalAddress.split(':')[0]!, Number(stack().temporalAddress.split(':')[1])];
  terminator = tls.createServer({ cert: readFileSync(paths.servingCert), key: readFileSync(paths.servingKey), ALPNProtocols: ['h2'] }, (client) => {
    handshakes++;
    const backend = net.connect(backendPort, backendHost);
    client.pipe(backend).pipe(client);
    const close = () => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', close);
    backend.on('error', close);
  });
  terminator.on('tlsClientError', (error) => refusedHandshakes.push(error.message));
  await new Promise<void>((resolve) => terminator.listen(0, '127.0.0.1', resolve));
  address = `localhost:${(terminator.address() as net.AddressInfo).port}`;
});

afterAll(() => terminator?.close());
afterEach(() => vi.unstubAllEnvs());

describe('the Temporal connection over TLS', () => {
  it('reaches Temporal through TLS with the CA file and an API key, from the client and the worker connection', async () => {
    vi.stubEnv('TEMPORAL_ADDRESS', address);
    vi.stubEnv('TEMPORAL_TLS_CA_FILE', stack().caFile);
    vi.stubEnv('TEMPORAL_API_KEY', 'test-api-key');
    const settings = loadTemporalConnection();
    const before = handshakes;
    const connection = await Connection.connect(settings);
    try {
      const { namespaceInfo } = await connection.workflowService.describeNamespace({ namespace: stack().temporalNamespace });
      expect(namespaceInfo?.name).toBe(stack().temporalNamespace);
    } finally {
      await connection.close();
    }
    const native = await NativeConnection.connect(settings);
    await native.close();
    expect(handshakes).toBeGreaterThanOrEqual(before + 2);
  });

  it('refuses a server whose certificate the configured trust (the system roots) does not cover', async () => {
    vi.stubEnv('TEMPORAL_ADDRESS', address);
    vi.stubEnv('TEMPORAL_TLS', 'true');
    const [before, refusedBefore] = [handshakes, refusedHandshakes.length];
    await expect(Connection.connect({ ...loadTemporalConnection(), connectTimeout: 2000 })).rejects.toThrow('Failed to connect before the deadline');
    // The client reached the terminator and began TLS, then dropped every handshake: none completed.
    expect(refusedHandshakes.length).toBeGreaterThan(refusedBefore);
    expect(handshakes).toBe(before);
  });
});
