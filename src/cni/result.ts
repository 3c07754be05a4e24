// Shapes what tidepool-cni prints on stdout, per CNI spec version. Pure.
import type { AgentAddResponse, AgentRoute } from '../contract/agent-api.ts';
import { SUPPORTED_CNI_VERSIONS, type CniError, type CniVersion } from './spec.ts';

/**
 * The abbreviated Success result of a delegated IPAM plugin: no `interfaces`, and no `interface` index in
 * `ips` (the main plugin fills those in). Spec 0.3.x/0.4.0 entries carry `version` ("4" or "6"); 1.0.0
 * removed it, and 1.1.0 left the result as 1.0.0 has it. `routes` is omitted when empty and `dns` is empty, as host-local does.
 */
export type IpamResult =
  | {
      cniVersion: '1.0.0' | '1.1.0';
      ips: { address: string; gateway?: string }[];
      routes?: AgentRoute[];
      dns: Record<string, never>;
    }
  | {
      cniVersion: '0.3.1' | '0.4.0';
      ips: { version: '4' | '6'; address: string; gateway?: string }[];
      routes?: AgentRoute[];
      dns: Record<string, never>;
    };

export interface ErrorResult extends CniError {
  cniVersion: string;
}

export interface VersionResult {
  cniVersion: string;
  supportedVersions: string[];
}

/** The ADD result of what the agent allocated for one attachment. */
export function addResult(cniVersion: CniVersion, allocation: AgentAddResponse): IpamResult {
  const routes = allocation.routes.map(({ dst, gw }): AgentRoute => (gw === undefined ? { dst } : { dst, gw }));
  const routesPart = routes.length > 0 ? { routes } : {};
  if (cniVersion === '1.0.0' || cniVersion === '1.1.0') {
    const ips = allocation.ips.map(({ address, gateway }) =>
      gateway === undefined ? { address } : { address, gateway },
    );
    return { cniVersion, ips, ...routesPart, dns: {} };
  }
  const ips = allocation.ips.map(({ version, address, gateway }) => {
    const ipVersion: '4' | '6' = version === 4 ? '4' : '6';
    return gateway === undefined ? { version: ipVersion, address } : { version: ipVersion, address, gateway };
  });
  return { cniVersion, ips, ...routesPart, dns: {} };
}

export function errorResult(cniVersion: string, error: CniError): ErrorResult {
  const result: ErrorResult = { cniVersion, code: error.code, msg: error.msg };
  if (error.details !== undefined && error.details !== '') result.details = error.details;
  return result;
}

export function versionResult(cniVersion: string): VersionResult {
  return { cniVersion, supportedVersions: [...SUPPORTED_CNI_VERSIONS] };
}
