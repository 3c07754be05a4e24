// Builds tidepool-cni as a Node.js single executable (what the Dockerfile installs into /opt/cni/bin) and
// runs it the way a container runtime does, with an environment that has no PATH and so no node to lean on.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCniSea } from '../../scripts/build-cni-sea.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-cni-sea-test-'));
let executable: string;
beforeAll(async () => {
  executable = await buildCniSea(path.join(dir, 'tidepool'));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runPlugin(env: Record<string, string>, stdin: string): Promise<{ exitCode: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(executable, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => resolve({ exitCode, stdout }));
    child.stdin.end(stdin);
  });
}

describe('tidepool-cni as a single executable', () => {
  it('is a native executable, not a script that needs node on the PATH', () => {
    expect(readFileSync(executable).subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  });

  it('answers VERSION with the versions it speaks', async () => {
    const { exitCode, stdout } = await runPlugin({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.1.0"}');
    expect(exitCode).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('answers a malformed ADD with a spec-shaped error and a non-zero exit', async () => {
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'infra-1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'net1', CNI_PATH: '/opt/cni/bin' };
    const { exitCode, stdout } = await runPlugin(env, '{"cniVersion":');
    expect(exitCode).not.toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ cniVersion: '1.1.0', code: 6, msg: 'the network configuration on stdin is not valid JSON' });
  });
});
