// Fuzz properties of tidepool-cni: the agent's parser of the CNI_* environment and stdin, the whole invocation
// in-process against recording agent calls, and the built plugin as a separate process (run the way a
// container runtime runs it) against a stand-in agent that runs the same invocation code.
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { AGENT_PATHS, type PluginOutput } from '../../src/contract/agent-api.ts';
import type { CniEnvironment } from '../../src/cni/environment.ts';
import { parseInvocation } from '../../src/cni/netconf.ts';
import { runCni } from '../../src/cni/plugin.ts';
import { SUPPORTED_CNI_VERSIONS } from '../../src/cni/spec.ts';
import { agentRequestProblem } from '../../src/agent/requests.ts';
import { recordingCalls, type AgentCall, type FakeAgent } from '../unit/cni-fake-agent.ts';

/** Any text, from printable ASCII to arbitrary UTF-16 (lone surrogates included). */
const anyText = (maxLength = 40) => fc.oneof(fc.string({ maxLength }), fc.string({ unit: 'binary', maxLength }));

/** Mostly a valid value, else an invalid one, sometimes nothing: most inputs then get past most checks. */
const field = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 20, arbitrary: valid }, { weight: 2, arbitrary: invalid }, { weight: 1, arbitrary: fc.constant(undefined) });

const podKeys = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID', 'K8S_POD_INFRA_CONTAINER_ID', 'IgnoreUnknown'];

const validCniArgs = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=uid-1';

/** CNI_ARGS: the valid form, pairs of known keys with arbitrary values, or arbitrary text. */
const cniArgs = fc.oneof(
  { weight: 12, arbitrary: fc.constant(validCniArgs) },
  fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(...podKeys), anyText(12)), fc.oneof(fc.constantFrom('default', 'web-0', 'uid-1', ''), anyText())), {
      maxLength: 6,
    })
    .map((pairs) => pairs.map(([key, value]) => `${key}=${value}`).join(';')),
  fc
    .tuple(fc.constantFrom(...podKeys.slice(0, 3)), fc.oneof(fc.constantFrom('a/b', 'Web', 'a'.repeat(254), '-x', 'x.', ' '), anyText()))
    .map(([key, value]) => validCniArgs.replace(new RegExp(`${key}=[^;]*`), `${key}=${value}`)),
  anyText(80),
);

/** The CNI_* environment, each variable valid, arbitrary or absent. */
export const cniEnvironment = fc.record({
  CNI_COMMAND: field(fc.constantFrom('ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'), fc.oneof(fc.constantFrom('FLUSH', 'gc', 'add', ''), anyText(10))),
  CNI_CONTAINERID: field(fc.constantFrom('c0ffee', 'a'.repeat(64)), fc.oneof(fc.constantFrom('-x', '../etc', 'a'.repeat(300)), anyText())),
  CNI_NETNS: field(fc.constant('/var/run/netns/cni-1'), anyText()),
  CNI_IFNAME: field(fc.constantFrom('eth0', 'net1'), fc.oneof(fc.constantFrom('a-very-long-interface', '.', 'a/b', 'a b'), anyText(20))),
  CNI_ARGS: field(cniArgs, anyText(80)),
  CNI_PATH: fc.constant('/opt/cni/bin'),
});

const ipamOf = (socketPath: fc.Arbitrary<unknown>, spoolDir: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.record({
      type: field(fc.constant('tidepool'), fc.jsonValue()),
      agent_socket: socketPath,
      spool_dir: spoolDir,
      default_ipv4_ippool: field(fc.array(fc.constantFrom('pool-a', 'pool-b')), fc.oneof(fc.array(fc.constantFrom('', ' ', 'x')), fc.jsonValue())),
      default_ipv6_ippool: field(fc.array(fc.constantFrom('pool-6')), fc.oneof(fc.array(anyText(10)), fc.jsonValue())),
      add_timeout_seconds: field(fc.constantFrom(5, 600), fc.oneof(fc.constantFrom(0, -1, 601, 0.001, 1e308), fc.jsonValue())),
      del_timeout_seconds: field(fc.constantFrom(5, 1), fc.oneof(fc.constantFrom(Number.MAX_VALUE, 0, 0.5), fc.jsonValue())),
    }) },
    { weight: 1, arbitrary: fc.jsonValue() },
  );

const prevResult = field(
  fc.record({ cniVersion: fc.constant('1.0.0'), ips: fc.array(fc.record({ address: field(fc.constantFrom('10.0.0.5/24', 'fd00::5/64'), fc.oneof(fc.constant('10.0.0.5'), anyText())) }), { maxLength: 3 }) }),
  fc.jsonValue(),
);

/**
 * A network configuration as text: netconf-shaped objects with fields valid, mistyped or absent, arbitrary
 * JSON, cut-short JSON, or arbitrary text. The `ipam` paths are drawn from the given arbitraries.
 */
export function networkConfiguration(socketPath: fc.Arbitrary<unknown>, spoolDir: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  const shaped = fc
    .record({
      cniVersion: field(fc.constantFrom(...SUPPORTED_CNI_VERSIONS), fc.oneof(fc.constantFrom('0.2.0', '2.0.0', '1.0'), fc.jsonValue())),
      name: field(fc.constant('underlay'), fc.jsonValue()),
      type: fc.constant('macvlan'),
      ipam: field(ipamOf(socketPath, spoolDir), fc.jsonValue()),
      prevResult,
      'cni.dev/valid-attachments': field(
        fc.array(fc.record({ containerID: fc.constantFrom('c0ffee', 'a'.repeat(64)), ifname: fc.constantFrom('eth0', 'net1') }), { maxLength: 3 }),
        fc.oneof(fc.array(fc.record({ containerID: anyText(10), ifname: anyText(20) }), { maxLength: 2 }), fc.jsonValue()),
      ),
    })
    .map((config) => JSON.stringify(config));
  return fc.oneof(
    { weight: 12, arbitrary: shaped },
    { weight: 1, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value) ?? '') },
    { weight: 1, arbitrary: fc.tuple(shaped, fc.nat()).map(([text, cut]) => text.slice(0, cut % (text.length + 1))) },
    { weight: 1, arbitrary: anyText(200) },
  );
}

/** Paths to anywhere: only for the parser, which never touches them. */
export const anyNetworkConfiguration = networkConfiguration(
  field(fc.constant('/run/tidepool/agent.sock'), fc.oneof(fc.constantFrom(`/${'s'.repeat(120)}`, 'relative.sock', '/a\0b'), fc.jsonValue())),
  field(fc.constant('/var/lib/tidepool/cni-spool'), fc.oneof(fc.constant('spool'), fc.jsonValue())),
);

const STACK_TRACE = /\n\s+at /;

/** What is wrong with a CNI error result printed on stdout (spec: cniVersion, code, msg, details?), if anything. */
export function errorResultProblem(output: unknown): string | undefined {
  if (typeof output !== 'object' || output === null || Array.isArray(output)) return 'the error is not a JSON object';
  const { cniVersion, code, msg, details, ...rest } = output as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return `the error has fields beyond the spec: ${Object.keys(rest).join(', ')}`;
  if (typeof cniVersion !== 'string' || !/^\d+\.\d+\.\d+$/.test(cniVersion)) return `cniVersion ${JSON.stringify(cniVersion)}`;
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 1) return `code ${JSON.stringify(code)}`;
  if (typeof msg !== 'string' || msg === '') return 'msg is missing or empty';
  if (details !== undefined && (typeof details !== 'string' || details === '')) return 'details is not a non-empty string';
  if (STACK_TRACE.test(msg) || (typeof details === 'string' && STACK_TRACE.test(details))) return 'the error carries a stack trace';
  return undefined;
}

/** What is wrong with an ADD result for `cniVersion` (the abbreviated result of an IPAM plugin), if anything. */
function addResultProblem(output: unknown, cniVersion: string): string | undefined {
  const result = output as { cniVersion?: unknown; ips?: { address?: unknown; version?: unknown }[] };
  if (result.cniVersion !== cniVersion) return `the result's cniVersion ${JSON.stringify(result.cniVersion)} is not ${cniVersion}`;
  if (!Array.isArray(result.ips) || result.ips.length === 0) return 'the result has no ips';
  for (const ip of result.ips) {
    if (typeof ip.address !== 'string' || !ip.address.includes('/')) return `ips address ${JSON.stringify(ip.address)}`;
    if (cniVersion.startsWith('0.') && ip.version !== '4' && ip.version !== '6') return `a ${cniVersion} result needs ips[].version`;
  }
  return undefined;
}

export const RECORDED_ALLOCATION = {
  ips: [{ address: '10.6.0.5/16', version: 4, gateway: '10.6.0.1' }],
  routes: [{ dst: '10.7.0.0/16', gw: '10.6.0.1' }],
};

export const RECORDED_GC = { network: 'underlay', node: 'node-1', validAttachments: 1, stale: 1, tooYoung: 0, released: ['10.6.0.9'] };

/** The recording agent's answers: an allocation to ADD, a GC's result to GC, `{}` to DEL, CHECK and STATUS. */
export const recordingAnswer = (call: AgentCall) =>
  ({
    status: 200,
    body: JSON.stringify(call.path === AGENT_PATHS.ADD ? RECORDED_ALLOCATION : call.path === AGENT_PATHS.GC ? RECORDED_GC : {}),
  }) as const;

/**
 * The plugin's contract for one invocation, given what it printed and what reached the agent: a rejected
 * invocation prints a spec-shaped error and sends nothing; an accepted one sends exactly its command, with a
 * body the agent's request rules accept, and prints a spec-valid result.
 */
export function pluginContractProblem(env: CniEnvironment, stdin: string, output: PluginOutput, calls: AgentCall[]): string | undefined {
  const parsed = parseInvocation(env, stdin);
  let printed: unknown;
  if (output.stdout !== '') {
    if (!output.stdout.endsWith('\n')) return 'stdout does not end with a newline';
    try {
      printed = JSON.parse(output.stdout);
    } catch {
      return `stdout is not JSON: ${output.stdout.slice(0, 200)}`;
    }
  }
  if (!parsed.ok) {
    if (calls.length > 0) return `a rejected invocation reached the agent: ${calls.map((call) => call.path).join(', ')}`;
    if (output.exitCode !== 1) return `a rejected invocation exited ${output.exitCode}`;
    const problem = errorResultProblem(printed);
    if (problem) return problem;
    const { code, msg } = printed as { code: number; msg: string };
    if (code !== parsed.error.code || msg !== parsed.error.msg) return `printed ${code} "${msg}", the parser said ${parsed.error.code} "${parsed.error.msg}"`;
    return undefined;
  }
  const invocation = parsed.invocation;
  if (invocation.command === 'VERSION') {
    if (calls.length > 0) return 'VERSION reached the agent';
    const version = printed as { cniVersion?: unknown; supportedVersions?: unknown };
    if (output.exitCode !== 0 || !Array.isArray(version.supportedVersions)) return 'VERSION did not print the supported versions';
    return undefined;
  }
  if (calls.length !== 1 || calls[0]!.path !== AGENT_PATHS[invocation.command]) {
    return `${invocation.command} sent ${JSON.stringify(calls.map((call) => call.path))} to the agent`;
  }
  const refused = agentRequestProblem(calls[0]!.path, calls[0]!.body);
  if (refused) return `the plugin accepted an invocation whose agent request the agent refuses: ${refused}`;
  if (output.exitCode !== 0) return `an accepted ${invocation.command} failed: ${output.stdout}`;
  if (invocation.command === 'ADD') return addResultProblem(printed, invocation.cniVersion);
  return output.stdout === '' ? undefined : `${invocation.command} printed ${output.stdout}`;
}

/** The parser never throws, and gives either an invocation or a spec-shaped error. */
export const parserProperty = () =>
  fc.property(fc.tuple(cniEnvironment, anyNetworkConfiguration), ([env, stdin]) => {
    const parsed = parseInvocation(env, stdin);
    if (parsed.ok) return;
    const problem = errorResultProblem({ cniVersion: parsed.cniVersion, ...parsed.error });
    if (problem) throw new Error(problem);
  });

/** Network configurations whose ipam paths mostly point at the recording agent and a temp spool. */
const configurationFor = (agent: FakeAgent, spoolDir: string) =>
  networkConfiguration(field(fc.constant(agent.socketPath), fc.jsonValue()), field(fc.constant(spoolDir), fc.jsonValue())).filter(
    (stdin) => !unfitForRecording(stdin, agent, spoolDir),
  );

/**
 * Whether a configuration the parser accepts names another socket or spool (a DEL would spool to a real
 * path of this machine), or a deadline under a second (an answer arriving after it would be counted for
 * the next run): such inputs are left to the parser property.
 */
function unfitForRecording(stdin: string, agent: FakeAgent, spoolDir: string): boolean {
  const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'x', CNI_IFNAME: 'x', CNI_ARGS: validCniArgs };
  const parsed = parseInvocation(env, stdin);
  if (!parsed.ok || parsed.invocation.command !== 'DEL') return false;
  const { agentSocket, spoolDir: spool, addTimeoutSeconds, delTimeoutSeconds } = parsed.invocation.ipam;
  return agentSocket !== agent.socketPath || spool !== spoolDir || addTimeoutSeconds < 1 || delTimeoutSeconds < 1;
}

/** The invocation in-process (runCni, as the agent runs it) against recording agent calls. */
export const pluginProperty = (agent: FakeAgent, spoolDir: string) =>
  fc.asyncProperty(fc.tuple(cniEnvironment, configurationFor(agent, spoolDir)), async ([env, stdin]) => {
    agent.calls.length = 0;
    const output = await runCni(env, stdin, recordingCalls(recordingAnswer, agent.calls));
    const problem = pluginContractProblem(env, stdin, output, agent.calls);
    if (problem) throw new Error(problem);
  });

/** Runs the bundled plugin as a runtime does; gives what it printed and its exit status. */
export function runPluginProcess(bundle: string, env: Record<string, string>, stdin: string): Promise<PluginOutput & { signal: string | null; rawExit: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bundle, [], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.on('close', (rawExit, signal) =>
      resolve({ stdout, stderr, exitCode: rawExit === 0 ? 0 : 1, rawExit, signal }),
    );
    child.stdin.end(stdin);
  });
}

/** An environment a process can be given: no NUL in names or values. */
const withoutNul = (env: Record<string, string | undefined>) =>
  Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined).map(([key, value]) => [key, value.replaceAll('\0', '')]));

/**
 * Whether tidepool-cni reads the recording agent's socket and spool from `stdin`. Any other configuration goes
 * to the node's default socket (and a DEL to its default spool), which is not this test's to use.
 */
function reachesRecordingAgent(stdin: string, agent: FakeAgent, spoolDir: string): boolean {
  try {
    const { ipam } = JSON.parse(stdin) as { ipam?: { agent_socket?: unknown; spool_dir?: unknown } };
    return ipam?.agent_socket === agent.socketPath && ipam.spool_dir === spoolDir;
  } catch {
    return false;
  }
}

/** The built plugin as a separate process against the stand-in agent; same contract, and exit 0 or 1 only. */
export const processProperty = (bundle: string, agent: FakeAgent, spoolDir: string) =>
  fc.asyncProperty(fc.tuple(cniEnvironment.map(withoutNul), configurationFor(agent, spoolDir).filter((stdin) => reachesRecordingAgent(stdin, agent, spoolDir))), async ([env, stdin]) => {
    agent.calls.length = 0;
    const output = await runPluginProcess(bundle, env, stdin);
    if (output.rawExit !== 0 && output.rawExit !== 1) throw new Error(`the plugin exited ${output.rawExit} (signal ${output.signal}): ${output.stderr}`);
    // The process reads its stdin as UTF-8, so compare with what the parser makes of the same bytes.
    const received = Buffer.from(stdin, 'utf8').toString('utf8');
    const problem = pluginContractProblem(env, received, output, agent.calls);
    if (problem) throw new Error(`${problem}\nstderr: ${output.stderr}`);
  });
