// Constants of the CNI specification that tidepool-cni implements (containernetworking/cni SPEC.md).

export const SUPPORTED_CNI_VERSIONS = ['0.3.1', '0.4.0', '1.0.0'] as const;
export type CniVersion = (typeof SUPPORTED_CNI_VERSIONS)[number];
export const NEWEST_CNI_VERSION: CniVersion = '1.0.0';

export function isSupportedCniVersion(version: unknown): version is CniVersion {
  return SUPPORTED_CNI_VERSIONS.includes(version as CniVersion);
}

/** CHECK exists since spec 0.4.0; a 0.3.1 configuration cannot be checked. */
export function supportsCheck(version: CniVersion): boolean {
  return version !== '0.3.1';
}


/** The body of a CNI error result, without its cniVersion. */
export interface CniError {
  code: number;
  msg: string;
  details?: string;
}

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];
