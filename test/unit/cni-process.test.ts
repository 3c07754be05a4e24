// Runs the built dist/tidepool-cni as a separate process, the way a container runtime does, against a stand-in
// agent that runs the agent's own invocation code (cni-fake-agent.ts), or against no agent at all.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCni } from '../../scripts/build-cni.ts';
import type { AgentAddResponse } from '../../src/contract/agent-api.ts';
import { listSpooledDels, spoolFileName } from '../../src/cni/spool.ts';
import { runPluginProcess } from '../fuzz/cni.ts';
import { cniEnvFor, cniError, json, startFakeAgent, type FakeAgent, type FakeAnswer } from './cni-fake-agent.ts';

let bundle: string;
beforeAll(async () => {
  bundle = await buildCni();
}, 120_000);

const dirs: string[] = [];
const agents: FakeAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-cni-'));
  dirs.push(dir);
  return dir;
}

const podArgs =
  'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=infra-1;K8S_POD_UID=uid-1';

/** The attachment and pod that envFor's CNI_* variables name. */
const attachment = { containerID: 'c0ffee', interface: 'net1', podNamespace: 'default', podName: 'web-0', podUID: 'uid-1', infraContainerID: 'infra-1' };

const envFor = (command: string, overrides: Record<string, string | undefined> = {}) =>
  cniEnvFor(command, podArgs, overrides);

function netconf(ipam: Record<string, unknown>, overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'macvlan-net',
    type: 'macvlan',
    master: 'eth0',
    ipam: { type: 'tidepool', ...ipam },
    ...overrides,
  });
}

interface Run {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, or undefined when empty. */
  output: Record<string, unknown> | undefined;
}

async function runPlugin(env: Record<string, string | undefined>, stdin: string): Promise<Run> {
  const defined = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const { rawExit, stdout, stderr } = await runPluginProcess(bundle, defined, stdin);
  return { exitCode: rawExit, stdout, stderr, output: stdout === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>) };
}

async function agentAnswering(answer: FakeAnswer): Promise<FakeAgent> {
  const agent = await startFakeAgent(tempDir(), () => answer);
  agents.push(agent);
  return agent;
}

describe('tidepool-cni process: VERSION and invalid input', () => {
  it('answers VERSION in the requested version, or the newest when stdin is empty', async () => {
    const agent = await agentAnswering(json(200, {}));
    const requested = await runPlugin({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0', ipam: { agent_socket: agent.socketPath } }));
    expect(requested).toMatchObject({ exitCode: 0, stderr: '' });
    expect(requested.output).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(agent.calls).toEqual([]);
  });

  it('answers VERSION itself when no agent answers', async () => {
    const socket = path.join(tempDir(), 'agent.sock');
    const requested = await runPlugin({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '0.4.0', ipam: { agent_socket: socket } }));
    expect(requested).toMatchObject({ exitCode: 0, stderr: '' });
    expect(requested.output).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const bare = await runPlugin({ CNI_COMMAND: 'VERSION' }, '');
    expect(bare.output).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('forwards stdin that names no agent socket to the default one, and says so when nothing answers there', async () => {
    const run = await runPlugin(envFor('ADD'), '{"cniVersion": "1.0.0", "ipam": ');
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({
      cniVersion: '1.1.0',
      code: 11,
      msg: 'tidepool agent is not reachable at /run/tidepool/agent.sock (ENOENT): is the tidepool-agent DaemonSet running on this node?',
    });
  });

  it('fails a missing ipam type or another ipam type with code 7, judged by the agent', async () => {
    const agent = await agentAnswering(json(200, {}));
    const missing = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath, type: undefined }));
    expect(missing.exitCode).toBe(1);
    expect(missing.output).toMatchObject({ code: 7, msg: 'ipam.type is nothing, expected "tidepool"' });
    const other = await runPlugin(envFor('ADD'), netconf({ type: 'whereabouts', agent_socket: agent.socketPath }, { cniVersion: '0.4.0' }));
    expect(other.output).toMatchObject({
      cniVersion: '0.4.0',
      code: 7,
      msg: 'ipam.type is "whereabouts", expected "tidepool"',
    });
    expect(agent.calls).toEqual([]);
  });

  it('fails an unsupported cniVersion with code 1', async () => {
    const agent = await agentAnswering(json(200, {}));
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath }, { cniVersion: '0.2.0' }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ cniVersion: '0.2.0', code: 1, msg: 'incompatible CNI version' });
  });

  it('fails with code 4 when CNI_ARGS lacks K8S_POD_UID', async () => {
    const agent = await agentAnswering(json(200, {}));
    const run = await runPlugin(
      envFor('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' }),
      netconf({ agent_socket: agent.socketPath }),
    );
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ code: 4, msg: 'CNI_ARGS lacks K8S_POD_UID' });
  });

  it('fails an unknown CNI_COMMAND with code 4', async () => {
    const agent = await agentAnswering(json(200, {}));
    const run = await runPlugin(envFor('FLUSH'), netconf({ agent_socket: agent.socketPath }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ code: 4, msg: 'unknown CNI_COMMAND "FLUSH"' });
    expect(agent.calls).toEqual([]);
  });
});

describe('tidepool-cni process: without an agent', () => {
  it('fails ADD with code 11 naming the socket', async () => {
    const socket = path.join(tempDir(), 'agent.sock');
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: socket }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({
      cniVersion: '1.0.0',
      code: 11,
      msg: `tidepool agent is not reachable at ${socket} (ENOENT): is the tidepool-agent DaemonSet running on this node?`,
    });
  });

  it('spools DEL, even without CNI_NETNS, and succeeds with no output', async () => {
    const dir = tempDir();
    const spool = path.join(dir, 'spool');
    const conf = netconf({ agent_socket: path.join(dir, 'agent.sock'), spool_dir: spool });
    const run = await runPlugin(envFor('DEL', { CNI_NETNS: undefined }), conf);
    expect(run).toMatchObject({ exitCode: 0, stdout: '' });
    expect(run.stderr).toContain(`DEL spooled to ${path.join(spool, 'c0ffee-net1.json')}`);
    expect(readdirSync(spool)).toEqual(['c0ffee-net1.json']);
    // The invocation as it came; the agent judges it when it replays it.
    const spooled = JSON.parse(readFileSync(path.join(spool, 'c0ffee-net1.json'), 'utf8')) as Record<string, unknown>;
    const env = envFor('DEL', { CNI_NETNS: undefined });
    expect(spooled).toEqual({ env: JSON.parse(JSON.stringify(env)) as unknown, stdin: conf, spooledAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown });
    expect(await listSpooledDels(spool)).toEqual([
      {
        path: path.join(spool, 'c0ffee-net1.json'),
        request: {
          ...attachment,
          spooledAt: spooled.spooledAt,
        },
      },
    ]);
  });

  it('names the spool file of an unusual attachment as the agent does', async () => {
    const dir = tempDir();
    const spool = path.join(dir, 'spool');
    const containerID = `c0ffee/é${'x'.repeat(200)}`;
    const run = await runPlugin(
      envFor('DEL', { CNI_CONTAINERID: containerID }),
      netconf({ agent_socket: path.join(dir, 'agent.sock'), spool_dir: spool }),
    );
    expect(run.exitCode).toBe(0);
    expect(readdirSync(spool)).toEqual([spoolFileName(containerID, 'net1')]);
  });

  it('fails DEL with code 5 naming the spool directory when the spool cannot be written', async () => {
    const dir = tempDir();
    const blocker = path.join(dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const spool = path.join(blocker, 'spool');
    const run = await runPlugin(
      envFor('DEL'),
      netconf({ agent_socket: path.join(dir, 'agent.sock'), spool_dir: spool }),
    );
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ code: 5 });
    expect(run.output?.msg).toMatch(
      new RegExp(`^could not spool the DEL of container c0ffee \\(interface net1\\) to ${spool}: .*ENOTDIR`),
    );
    expect(run.output?.details).toContain('ipam.spool_dir');
  });
});

describe('tidepool-cni process: with an agent', () => {
  const allocation: AgentAddResponse = {
    ips: [
      { address: '10.6.0.5/16', version: 4, gateway: '10.6.0.1' },
      { address: 'fd00:6::5/64', version: 6 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }],
  };

  it('prints the 1.0.0 result and sends the agent the attachment, the pod and the default pools', async () => {
    const agent = await agentAnswering(json(200, allocation));
    const ipam = { agent_socket: agent.socketPath, default_ipv4_ippool: ['pool-a'], default_ipv6_ippool: ['pool-b'] };
    const run = await runPlugin(envFor('ADD'), netconf(ipam));
    expect(run).toMatchObject({ exitCode: 0, stderr: '' });
    expect(run.output).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.6.0.5/16', gateway: '10.6.0.1' }, { address: 'fd00:6::5/64' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }],
      dns: {},
    });
    expect(agent.calls).toEqual([
      {
        path: '/v1/cni/add',
        body: {
          ...attachment,
          netns: '/var/run/netns/cni-1',
          defaultPools: { ipv4: ['pool-a'], ipv6: ['pool-b'] },
          network: 'macvlan-net',
        },
      },
    ]);
  });

  it.each(['0.3.1', '0.4.0'])('prints the %s result with ip versions', async (cniVersion) => {
    const agent = await agentAnswering(json(200, allocation));
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath }, { cniVersion }));
    expect(run.exitCode).toBe(0);
    expect(run.output).toEqual({
      cniVersion,
      ips: [
        { version: '4', address: '10.6.0.5/16', gateway: '10.6.0.1' },
        { version: '6', address: 'fd00:6::5/64' },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }],
      dns: {},
    });
  });

  it("passes the agent's CNI error through", async () => {
    const agent = await agentAnswering(
      cniError(409, { code: 107, msg: 'no free IP in pool-a', details: '16 of 16 allocated' }),
    );
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath }, { cniVersion: '0.4.0' }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toEqual({
      cniVersion: '0.4.0',
      code: 107,
      msg: 'no free IP in pool-a',
      details: '16 of 16 allocated',
    });
  });

  it('fails an answer that is not what to print with code 5', async () => {
    const agent = await agentAnswering({ raw: 'OK' });
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath }));
    expect(run.output).toMatchObject({
      code: 5,
      msg: `tidepool agent at ${agent.socketPath} gave an unexpected answer to ADD: not {"stdout", "stderr", "exitCode"}`,
      details: `is the process listening on ${agent.socketPath} a tidepool agent of a matching version? It answered: OK`,
    });
  });

  it('fails ADD with code 11 when the agent closes the connection without an answer', async () => {
    const agent = await agentAnswering('hang-up');
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ code: 11, msg: `the connection to the tidepool agent at ${agent.socketPath} broke before it answered ADD (ECONNRESET)` });
  });

  it('fails ADD with code 11 when the agent does not answer in add_timeout_seconds', async () => {
    const agent = await agentAnswering('hang');
    const run = await runPlugin(envFor('ADD'), netconf({ agent_socket: agent.socketPath, add_timeout_seconds: 0.3 }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({
      code: 11,
      msg: `tidepool agent at ${agent.socketPath} did not answer ADD within 0.3 s`,
    });
  });

  it('succeeds DEL with no output when the agent takes it', async () => {
    const agent = await agentAnswering(json(200, {}));
    const spool = path.join(tempDir(), 'spool');
    const run = await runPlugin(envFor('DEL'), netconf({ agent_socket: agent.socketPath, spool_dir: spool }));
    expect(run).toEqual({ exitCode: 0, stdout: '', stderr: '', output: undefined });
    expect(agent.calls.map((call) => call.path)).toEqual(['/v1/cni/del']);
    expect(() => readdirSync(spool)).toThrow(/ENOENT/);
  });

  it('spools DEL when the agent hangs up or does not answer in time', async () => {
    const gone = await agentAnswering('hang-up');
    const spool = path.join(tempDir(), 'spool');
    const run = await runPlugin(envFor('DEL'), netconf({ agent_socket: gone.socketPath, spool_dir: spool }));
    expect(run).toMatchObject({ exitCode: 0, stdout: '' });
    expect(readdirSync(spool)).toEqual(['c0ffee-net1.json']);

    const slow = await agentAnswering('hang');
    const timedOut = await runPlugin(
      envFor('DEL', { CNI_CONTAINERID: 'beef', CNI_IFNAME: 'net2' }),
      netconf({ agent_socket: slow.socketPath, spool_dir: spool, del_timeout_seconds: 0.2 }),
    );
    expect(timedOut.exitCode).toBe(0);
    expect(readdirSync(spool).sort()).toEqual(['beef-net2.json', 'c0ffee-net1.json']);
  });

  it('fails DEL with the agent error when the agent refuses it for good', async () => {
    const agent = await agentAnswering(cniError(400, { code: 7, msg: 'unknown pod' }));
    const spool = path.join(tempDir(), 'spool');
    const run = await runPlugin(envFor('DEL'), netconf({ agent_socket: agent.socketPath, spool_dir: spool }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'unknown pod' });
  });

  it('CHECKs the addresses of prevResult with the agent', async () => {
    const agent = await agentAnswering(json(200, {}));
    const prevResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', sandbox: '/var/run/netns/cni-1' }],
      ips: [{ address: '10.6.0.5/16', gateway: '10.6.0.1', interface: 0 }],
    };
    const run = await runPlugin(envFor('CHECK'), netconf({ agent_socket: agent.socketPath }, { prevResult }));
    expect(run).toMatchObject({ exitCode: 0, stdout: '' });
    expect(agent.calls).toEqual([
      {
        path: '/v1/cni/check',
        body: {
          ...attachment,
          ips: ['10.6.0.5/16'],
        },
      },
    ]);
  });

  it('fails STATUS with code 50 when the agent is not reachable', async () => {
    const socket = path.join(tempDir(), 'agent.sock');
    const run = await runPlugin(envFor('STATUS'), netconf({ agent_socket: socket }, { cniVersion: '1.1.0' }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ cniVersion: '1.1.0', code: 50, msg: `tidepool agent is not reachable at ${socket} (ENOENT): is the tidepool-agent DaemonSet running on this node?` });
  });

  it('fails CHECK with code 11 when the agent is not reachable', async () => {
    const socket = path.join(tempDir(), 'agent.sock');
    const run = await runPlugin(envFor('CHECK'), netconf({ agent_socket: socket }, { prevResult: { ips: [] } }));
    expect(run.exitCode).toBe(1);
    expect(run.output).toMatchObject({ code: 11 });
    expect(run.output?.msg).toContain(socket);
  });
});
