import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseInvocation, type ParsedInvocation } from '../../src/cni/netconf.ts';
import { cniEnvFor } from './cni-fake-agent.ts';

const podArgs =
  'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234-5678';

const envFor = (command: string, overrides: Record<string, string | undefined> = {}) =>
  cniEnvFor(command, podArgs, overrides);

function netconf(overrides: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'macvlan-net',
    type: 'macvlan',
    master: 'eth0',
    ipam: { type: 'tidepool', ...ipam },
    ...overrides,
  });
}

function errorOf(parsed: ParsedInvocation) {
  if (parsed.ok) throw new Error(`expected an error, got ${JSON.stringify(parsed.invocation)}`);
  return { cniVersion: parsed.cniVersion, ...parsed.error };
}

function invocationOf(parsed: ParsedInvocation) {
  if (!parsed.ok) throw new Error(`expected an invocation, got ${JSON.stringify(parsed.error)}`);
  return parsed.invocation;
}

describe('parseInvocation: commands and versions', () => {
  it('parses an ADD with the ipam defaults and the pod from CNI_ARGS', () => {
    expect(invocationOf(parseInvocation(envFor('ADD'), netconf()))).toEqual({
      command: 'ADD',
      cniVersion: '1.0.0',
      containerID: 'c0ffee',
      netns: '/var/run/netns/cni-1',
      interface: 'net1',
      pod: { podNamespace: 'default', podName: 'web-0', podUID: '1234-5678', infraContainerID: 'abc' },
      ipam: {
        defaultIpv4Pools: [],
        defaultIpv6Pools: [],
        agentSocket: '/run/tidepool/agent.sock',
        addTimeoutSeconds: 30,
        delTimeoutSeconds: 10,
        statusTimeoutSeconds: 5,
        spoolDir: '/var/lib/tidepool/cni-spool',
      },
      network: 'macvlan-net',
    });
  });

  it('takes every ipam field that is set', () => {
    const ipam = {
      default_ipv4_ippool: ['pool-a', 'pool-c'],
      default_ipv6_ippool: ['pool-b'],
      agent_socket: '/run/tp/a.sock',
      add_timeout_seconds: 0.5,
      del_timeout_seconds: 600,
      spool_dir: '/var/spool/tp',
    };
    const invocation = invocationOf(parseInvocation(envFor('ADD'), netconf({}, ipam)));
    expect(invocation.command === 'ADD' && invocation.ipam).toEqual({
      defaultIpv4Pools: ['pool-a', 'pool-c'],
      defaultIpv6Pools: ['pool-b'],
      agentSocket: '/run/tp/a.sock',
      addTimeoutSeconds: 0.5,
      delTimeoutSeconds: 600,
      statusTimeoutSeconds: 5,
      spoolDir: '/var/spool/tp',
    });
  });

  it('leaves infraContainerID out when CNI_ARGS does not carry it', () => {
    const env = envFor('ADD', { CNI_ARGS: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u;' });
    const invocation = invocationOf(parseInvocation(env, netconf()));
    expect(invocation.command === 'ADD' && invocation.pod).toEqual({
      podNamespace: 'ns',
      podName: 'p',
      podUID: 'u',
    });
  });

  it('accepts a DEL without CNI_NETNS', () => {
    const invocation = invocationOf(parseInvocation(envFor('DEL', { CNI_NETNS: undefined }), netconf()));
    expect(invocation).toMatchObject({ command: 'DEL', containerID: 'c0ffee', interface: 'net1' });
    expect(invocation).not.toHaveProperty('netns');
  });

  it('answers VERSION in the requested version when supported, else in the newest, whatever stdin holds', () => {
    const version = (stdin: string) => invocationOf(parseInvocation({ CNI_COMMAND: 'VERSION' }, stdin));
    expect(version('{"cniVersion":"0.4.0"}')).toEqual({ command: 'VERSION', cniVersion: '0.4.0' });
    expect(version('')).toEqual({ command: 'VERSION', cniVersion: '1.1.0' });
    expect(version('{"cniVersion":"1.1.0"}')).toEqual({ command: 'VERSION', cniVersion: '1.1.0' });
    expect(version('{"cniVersion":"1.2.0"}')).toEqual({ command: 'VERSION', cniVersion: '1.1.0' });
    expect(version('not json')).toEqual({ command: 'VERSION', cniVersion: '1.1.0' });
  });

  it('refuses a missing or unknown CNI_COMMAND with code 4', () => {
    expect(errorOf(parseInvocation({}, netconf()))).toMatchObject({ code: 4, msg: 'CNI_COMMAND is not set' });
    expect(errorOf(parseInvocation(envFor('FLUSH'), netconf()))).toMatchObject({
      code: 4,
      msg: 'unknown CNI_COMMAND "FLUSH"',
      details: 'expected one of ADD, DEL, CHECK, GC, STATUS, VERSION',
    });
  });

  it('refuses an unsupported or missing cniVersion with code 1, echoing the version it was given', () => {
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({ cniVersion: '0.2.0' })))).toEqual({
      cniVersion: '0.2.0',
      code: 1,
      msg: 'incompatible CNI version',
      details: 'the network configuration has cniVersion "0.2.0"; tidepool-cni supports 0.3.1, 0.4.0, 1.0.0, 1.1.0',
    });
    const missing = errorOf(parseInvocation(envFor('ADD'), netconf({ cniVersion: undefined })));
    expect([missing.cniVersion, missing.code, missing.details]).toEqual([
      '1.1.0',
      1,
      'the network configuration has no cniVersion; tidepool-cni supports 0.3.1, 0.4.0, 1.0.0, 1.1.0',
    ]);
  });

  it('speaks 1.1.0, and with cniVersions the highest version both sides support', () => {
    const versionOf = (conf: Record<string, unknown>) => invocationOf(parseInvocation(envFor('ADD'), netconf(conf))).cniVersion;
    expect(versionOf({ cniVersion: '1.1.0' })).toBe('1.1.0');
    expect(versionOf({ cniVersion: undefined, cniVersions: ['0.4.0', '1.0.0', '9.9.9'] })).toBe('1.0.0');
    expect(versionOf({ cniVersion: '0.4.0', cniVersions: ['1.1.0', '2.0.0'] })).toBe('1.1.0');
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({ cniVersion: undefined, cniVersions: ['0.2.0', '2.0.0'] })))).toMatchObject({
      code: 1,
      details: 'the network configuration has cniVersion nothing and cniVersions ["0.2.0","2.0.0"]; tidepool-cni supports 0.3.1, 0.4.0, 1.0.0, 1.1.0',
    });
  });

  it('never refuses a DEL for its version alone, since that would leak what its ADD allocated', () => {
    for (const cniVersion of ['0.2.0', '2.0.0', undefined]) {
      expect(invocationOf(parseInvocation(envFor('DEL'), netconf({ cniVersion })))).toMatchObject({ command: 'DEL', containerID: 'c0ffee' });
    }
    expect(invocationOf(parseInvocation(envFor('DEL'), netconf({ cniVersion: '0.2.0' }))).cniVersion).toBe('0.2.0');
  });

  it('records the network name with an ADD, and refuses one the spec does not allow with code 7', () => {
    expect(invocationOf(parseInvocation(envFor('ADD'), netconf({ name: 'underlay-1' })))).toMatchObject({ network: 'underlay-1' });
    expect(invocationOf(parseInvocation(envFor('ADD'), netconf({ name: undefined })))).not.toHaveProperty('network');
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({ name: '-bad name' })))).toMatchObject({ code: 7, msg: expect.stringContaining("name has invalid characters") });
  });

  it('parses GC: the network, the node and cni.dev/valid-attachments, only from 1.1.0', () => {
    const gc = (conf: Record<string, unknown>) => parseInvocation({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, netconf({ cniVersion: '1.1.0', ...conf }));
    const valid = [{ containerID: 'c0ffee', ifname: 'eth0' }];
    expect(invocationOf(gc({ 'cni.dev/valid-attachments': valid }))).toMatchObject({
      command: 'GC',
      cniVersion: '1.1.0',
      validAttachments: [{ containerID: 'c0ffee', interface: 'eth0' }],
    });
    expect(errorOf(gc({}))).toMatchObject({ code: 7, msg: 'GC needs cni.dev/valid-attachments as a list, got nothing' });
    expect(errorOf(gc({ 'cni.dev/valid-attachments': [{ containerID: 'c0ffee', ifname: 'a/b' }] }))).toMatchObject({
      code: 7,
      msg: expect.stringContaining('ifname contains "/", ":" or whitespace'),
    });
    expect(errorOf(gc({ name: undefined, 'cni.dev/valid-attachments': valid }))).toMatchObject({ code: 7, msg: "the network configuration's name is not a string" });
    expect(errorOf(gc({ cniVersion: '1.0.0', 'cni.dev/valid-attachments': valid }))).toMatchObject({ code: 1, msg: 'GC is not supported by CNI 1.0.0' });
  });

  it('parses STATUS from 1.1.0, with no attachment in the environment', () => {
    const status = (cniVersion: string) => parseInvocation({ CNI_COMMAND: 'STATUS' }, netconf({ cniVersion }));
    expect(invocationOf(status('1.1.0'))).toMatchObject({ command: 'STATUS', cniVersion: '1.1.0' });
    expect(errorOf(status('0.4.0'))).toMatchObject({ code: 1, msg: 'STATUS is not supported by CNI 0.4.0' });
  });

  it('refuses CHECK for a 0.3.1 configuration, which predates CHECK', () => {
    expect(errorOf(parseInvocation(envFor('CHECK'), netconf({ cniVersion: '0.3.1', prevResult: {} })))).toMatchObject({
      cniVersion: '0.3.1',
      code: 1,
      msg: 'CHECK is not supported by CNI 0.3.1',
    });
  });
});

describe('parseInvocation: stdin', () => {
  it('gives code 6 for empty, malformed or non-object stdin, with the newest version', () => {
    expect(errorOf(parseInvocation(envFor('ADD'), ''))).toMatchObject({
      cniVersion: '1.1.0',
      code: 6,
      msg: 'no network configuration on stdin',
    });
    expect(errorOf(parseInvocation(envFor('ADD'), '  \n'))).toMatchObject({ code: 6 });
    const malformed = errorOf(parseInvocation(envFor('DEL'), '{"cniVersion": "1.0.0",'));
    expect(malformed).toMatchObject({
      cniVersion: '1.1.0',
      code: 6,
      msg: 'the network configuration on stdin is not valid JSON',
    });
    expect(malformed.details).toMatch(/JSON/);
    expect(errorOf(parseInvocation(envFor('ADD'), '[1,2]'))).toMatchObject({
      code: 6,
      msg: 'the network configuration on stdin is not a JSON object',
      details: 'got [1,2]',
    });
  });
});

describe('parseInvocation: environment', () => {
  it('names every missing variable; DEL does not need CNI_NETNS', () => {
    const env = envFor('ADD', { CNI_CONTAINERID: undefined, CNI_NETNS: '', CNI_IFNAME: undefined });
    expect(errorOf(parseInvocation(env, netconf()))).toMatchObject({
      code: 4,
      msg: 'required environment variables missing: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME',
    });
    const del = envFor('DEL', { CNI_CONTAINERID: undefined, CNI_NETNS: undefined });
    expect(errorOf(parseInvocation(del, netconf()))).toMatchObject({
      msg: 'required environment variables missing: CNI_CONTAINERID',
    });
  });

  it('validates CNI_CONTAINERID and CNI_IFNAME as the spec defines them', () => {
    expect(errorOf(parseInvocation(envFor('ADD', { CNI_CONTAINERID: '-abc' }), netconf()))).toMatchObject({
      code: 4,
      msg: 'CNI_CONTAINERID "-abc" has invalid characters',
    });
    expect(errorOf(parseInvocation(envFor('ADD', { CNI_IFNAME: 'a-very-long-ifname' }), netconf()))).toMatchObject({
      code: 4,
      msg: 'CNI_IFNAME "a-very-long-ifname" is not a valid interface name: it is longer than 15 bytes',
    });
    expect(errorOf(parseInvocation(envFor('DEL', { CNI_IFNAME: 'eth:0' }), netconf()))).toMatchObject({
      code: 4,
      msg: 'CNI_IFNAME "eth:0" is not a valid interface name: it contains "/", ":" or whitespace',
    });
    expect(errorOf(parseInvocation(envFor('DEL', { CNI_IFNAME: '..' }), netconf()))).toMatchObject({ code: 4 });
  });

  it('names the missing K8S_POD_* keys of CNI_ARGS and says where they come from', () => {
    const env = envFor('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' });
    const error = errorOf(parseInvocation(env, netconf()));
    expect(error).toMatchObject({ code: 4, msg: 'CNI_ARGS lacks K8S_POD_UID' });
    expect(error.details).toContain('container runtime');
    expect(error.details).toContain('CNI_ARGS was "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"');

    const none = errorOf(parseInvocation(envFor('DEL', { CNI_ARGS: undefined }), netconf()));
    expect(none.msg).toBe('CNI_ARGS lacks K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID');
    const empty = errorOf(
      parseInvocation(envFor('CHECK', { CNI_ARGS: `${podArgs};K8S_POD_NAME=` }), netconf({ prevResult: {} })),
    );
    expect(empty.msg).toBe('CNI_ARGS lacks K8S_POD_NAME');
  });

  it('refuses a CNI_ARGS pair without "="', () => {
    expect(errorOf(parseInvocation(envFor('ADD', { CNI_ARGS: `${podArgs};garbage` }), netconf()))).toMatchObject({
      code: 4,
      msg: 'CNI_ARGS has a malformed pair "garbage"',
    });
  });
});

describe('parseInvocation: the ipam section', () => {
  it('needs an ipam section of type tidepool', () => {
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({ ipam: undefined })))).toMatchObject({
      code: 7,
      msg: 'the network configuration of network "macvlan-net" has no "ipam" section',
    });
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({ ipam: 'tidepool' })))).toMatchObject({
      code: 7,
      msg: '"ipam" must be an object, got "tidepool"',
    });
    expect(errorOf(parseInvocation(envFor('DEL'), netconf({}, { type: 'host-local' })))).toMatchObject({
      code: 7,
      msg: 'ipam.type is "host-local", expected "tidepool"',
    });
  });

  it.each([
    [
      { default_ipv4_ippool: 'pool-a' },
      'ipam.default_ipv4_ippool must be a list of non-empty IPPool names, got "pool-a"',
    ],
    [
      { default_ipv6_ippool: ['pool-b', ''] },
      'ipam.default_ipv6_ippool must be a list of non-empty IPPool names, got ["pool-b",""]',
    ],
    [{ default_ipv4_ippool: [1] }, 'ipam.default_ipv4_ippool must be a list of non-empty IPPool names, got [1]'],
    [
      { add_timeout_seconds: 0 },
      'ipam.add_timeout_seconds must be a number of seconds greater than 0 and at most 600, got 0',
    ],
    [
      { del_timeout_seconds: 601 },
      'ipam.del_timeout_seconds must be a number of seconds greater than 0 and at most 600, got 601',
    ],
    [
      { add_timeout_seconds: '30' },
      'ipam.add_timeout_seconds must be a number of seconds greater than 0 and at most 600, got "30"',
    ],
    [{ agent_socket: 'run/agent.sock' }, 'ipam.agent_socket must be an absolute path, got "run/agent.sock"'],
    [{ spool_dir: 42 }, 'ipam.spool_dir must be an absolute path, got 42'],
  ])('refuses %j with code 7 naming the field and the value', (ipam, msg) => {
    expect(errorOf(parseInvocation(envFor('ADD'), netconf({}, ipam)))).toMatchObject({ code: 7, msg });
  });

  it('refuses an agent_socket longer than a unix socket path may be', () => {
    const error = errorOf(parseInvocation(envFor('ADD'), netconf({}, { agent_socket: `/${'s'.repeat(107)}` })));
    expect(error.msg).toMatch(/^ipam\.agent_socket is longer than the 107 bytes a unix socket path may have/);
  });
});

describe('parseInvocation: CHECK', () => {
  it('takes the addresses of prevResult, in either result shape', () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'net1', sandbox: '/var/run/netns/cni-1' }],
      ips: [
        { version: '4', address: '10.6.0.5/16', gateway: '10.6.0.1', interface: 0 },
        { version: '6', address: 'fd00::5/64', interface: 0 },
      ],
    };
    const invocation = invocationOf(parseInvocation(envFor('CHECK'), netconf({ cniVersion: '0.4.0', prevResult })));
    expect(invocation).toMatchObject({
      command: 'CHECK',
      netns: '/var/run/netns/cni-1',
      prevResultAddresses: ['10.6.0.5/16', 'fd00::5/64'],
    });
  });

  it('needs a prevResult whose ips carry CIDR addresses', () => {
    expect(errorOf(parseInvocation(envFor('CHECK'), netconf()))).toMatchObject({
      code: 7,
      msg: 'CHECK needs prevResult in the network configuration',
    });
    expect(
      errorOf(parseInvocation(envFor('CHECK'), netconf({ prevResult: { ips: [{ address: '10.6.0.5' }] } }))),
    ).toMatchObject({
      code: 7,
      msg: 'prevResult.ips[0].address must be an address in CIDR notation, got "10.6.0.5"',
    });
  });
});

describe('parseInvocation never throws', () => {
  const knownCodes = [1, 4, 6, 7];
  const commands = fc.constantFrom('ADD', 'DEL', 'CHECK', 'VERSION', 'GC', '', 'add');
  const environments = fc.record(
    {
      CNI_COMMAND: commands,
      CNI_CONTAINERID: fc.string(),
      CNI_NETNS: fc.string(),
      CNI_IFNAME: fc.string({ maxLength: 20 }),
      CNI_ARGS: fc.oneof(fc.string(), fc.constant(podArgs), fc.constant(`${podArgs};x`)),
      CNI_PATH: fc.string(),
    },
    { requiredKeys: [] },
  );

  function assertWellFormed(parsed: ParsedInvocation) {
    if (parsed.ok) {
      expect(['ADD', 'DEL', 'CHECK', 'VERSION']).toContain(parsed.invocation.command);
    } else {
      expect(knownCodes).toContain(parsed.error.code);
      expect(parsed.error.msg.length).toBeGreaterThan(0);
      expect(parsed.cniVersion).toMatch(/^\d+\.\d+\.\d+$/);
    }
  }

  it('for arbitrary stdin and environments', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.string()),
        environments,
        fc.oneof(fc.string(), fc.string({ unit: 'binary' })),
        (extra, env, stdin) => {
          assertWellFormed(parseInvocation({ ...extra, ...env }, stdin));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('for arbitrary network configurations under mostly valid environments', () => {
    // Mostly valid values, so that runs get past the environment checks to the ipam and prevResult parsing.
    const mostly = <T>(valid: T, other: fc.Arbitrary<T>) =>
      fc.oneof({ arbitrary: fc.constant(valid), weight: 4 }, other);
    const plausibleEnvironments = fc.record({
      CNI_COMMAND: fc.constantFrom('ADD', 'DEL', 'CHECK'),
      CNI_CONTAINERID: mostly('c0ffee', fc.string()),
      CNI_NETNS: mostly('/var/run/netns/cni-1', fc.string()),
      CNI_IFNAME: mostly('net1', fc.string({ maxLength: 20 })),
      CNI_ARGS: mostly(podArgs, fc.string()),
    });
    const anything = fc.oneof(fc.constant(null), fc.jsonValue());
    const ipamSections = fc.record(
      {
        type: mostly<unknown>('tidepool', anything),
        default_ipv4_ippool: fc.oneof(fc.array(fc.string()), anything),
        default_ipv6_ippool: fc.oneof(fc.array(fc.string()), anything),
        agent_socket: fc.oneof(
          fc.string().map((s) => `/${s}`),
          anything,
        ),
        add_timeout_seconds: fc.oneof(fc.double(), anything),
        del_timeout_seconds: fc.oneof(fc.integer(), anything),
        spool_dir: fc.oneof(
          fc.string().map((s) => `/${s}`),
          anything,
        ),
      },
      { requiredKeys: [] },
    );
    const configs = fc
      .record(
        {
          cniVersion: mostly<unknown>('1.0.0', fc.oneof(fc.constantFrom('0.3.1', '0.4.0', '0.2.0'), anything)),
          name: anything,
          ipam: mostly<unknown>({ type: 'tidepool' }, fc.oneof(ipamSections, anything)),
          prevResult: fc.oneof(
            fc.record({ ips: fc.array(fc.oneof(fc.record({ address: anything }), anything)) }),
            anything,
          ),
        },
        { requiredKeys: ['cniVersion', 'ipam'] },
      )
      .map((config) => JSON.stringify(config));
    fc.assert(
      fc.property(
        plausibleEnvironments,
        fc.oneof(
          configs,
          anything.map((value) => JSON.stringify(value)),
        ),
        (env, stdin) => {
          assertWellFormed(parseInvocation(env, stdin));
        },
      ),
      { numRuns: 4000 },
    );
  });
});
