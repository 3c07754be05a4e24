import { describe, expect, it } from 'vitest';
import { poolRoutes } from '../../src/ipam/pool.ts';

describe('poolRoutes', () => {
  it('gives a pool with a gateway the default route via it, before spec.routes', () => {
    expect(poolRoutes({ subnet: '10.6.0.0/16', ips: [], gateway: '10.6.0.1', routes: [{ dst: '172.16.0.0/12', gw: '10.6.0.2' }] }, 4)).toEqual([
      { dst: '0.0.0.0/0', gw: '10.6.0.1' },
      { dst: '172.16.0.0/12', gw: '10.6.0.2' },
    ]);
    expect(poolRoutes({ subnet: 'fd00:6::/64', ips: [], gateway: 'fd00:6::1' }, 6)).toEqual([{ dst: '::/0', gw: 'fd00:6::1' }]);
  });

  it('gives none when the pool says defaultRoute: false (a second NIC), or has no gateway', () => {
    expect(poolRoutes({ subnet: '10.6.0.0/16', ips: [], gateway: '10.6.0.1', defaultRoute: false }, 4)).toEqual([]);
    expect(poolRoutes({ subnet: '10.6.0.0/16', ips: [], routes: [{ dst: '172.16.0.0/12', gw: '10.6.0.2' }] }, 4)).toEqual([
      { dst: '172.16.0.0/12', gw: '10.6.0.2' },
    ]);
  });
});
