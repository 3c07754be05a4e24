import { describe, expect, it } from 'vitest';
import type { AgentAddResponse } from '../../src/contract/agent-api.ts';
import { addResult, errorResult, versionResult } from '../../src/cni/result.ts';

const dualStack: AgentAddResponse = {
  ips: [
    { address: '10.6.0.5/16', version: 4, gateway: '10.6.0.1' },
    { address: 'fd00:6::5/64', version: 6 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }, { dst: 'fd00:7::/64' }],
};

describe('addResult', () => {
  it('gives the 1.0.0 abbreviated IPAM result: no version and no interface index in ips', () => {
    const result = addResult('1.0.0', dualStack);
    expect(JSON.stringify(result)).toBe(
      JSON.stringify({
        cniVersion: '1.0.0',
        ips: [{ address: '10.6.0.5/16', gateway: '10.6.0.1' }, { address: 'fd00:6::5/64' }],
        routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }, { dst: 'fd00:7::/64' }],
        dns: {},
      }),
    );
  });

  it.each(['0.3.1', '0.4.0'] as const)('gives %s ips a version of "4" or "6"', (cniVersion) => {
    expect(addResult(cniVersion, dualStack)).toEqual({
      cniVersion,
      ips: [
        { version: '4', address: '10.6.0.5/16', gateway: '10.6.0.1' },
        { version: '6', address: 'fd00:6::5/64' },
      ],
      routes: [{ dst: '0.0.0.0/0', gw: '10.6.0.1' }, { dst: 'fd00:7::/64' }],
      dns: {},
    });
  });

  it('omits routes when there are none, as host-local does', () => {
    const result = addResult('0.4.0', { ips: [{ address: '10.6.0.5/16', version: 4 }], routes: [] });
    expect(result).toEqual({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.6.0.5/16' }], dns: {} });
    expect(result).not.toHaveProperty('routes');
  });

  it('leaves out what the agent sent beyond the result (pool, vlan)', () => {
    const withPool = { ips: [{ address: '10.6.0.5/16', version: 4 as const, pool: 'pool-a', vlan: 6 }], routes: [] };
    expect(addResult('1.0.0', withPool).ips).toEqual([{ address: '10.6.0.5/16' }]);
  });
});

describe('errorResult and versionResult', () => {
  it('shapes an error, leaving out empty details', () => {
    expect(errorResult('0.4.0', { code: 11, msg: 'try later', details: 'agent busy' })).toEqual({
      cniVersion: '0.4.0',
      code: 11,
      msg: 'try later',
      details: 'agent busy',
    });
    expect(errorResult('1.0.0', { code: 7, msg: 'bad', details: '' })).toEqual({
      cniVersion: '1.0.0',
      code: 7,
      msg: 'bad',
    });
  });

  it('lists the supported versions', () => {
    expect(versionResult('0.3.1')).toEqual({ cniVersion: '0.3.1', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});
