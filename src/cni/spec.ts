// Constants of the CNI specification that tidepool-cni implements (containernetworking/cni SPEC.md).

export const SUPPORTED_CNI_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_CNI_VERSIONS)[number];
export const NEWEST_CNI_VERSION: CniVersion = '1.1.0';

export function isSupportedCniVersion(version: unknown): version is CniVersion {
  return SUPPORTED_CNI_VERSIONS.includes(version as CniVersion);
}

/**
 * The version to speak: the configuration's `cniVersion`, or, when it lists `cniVersions` (spec 1.1.0), the
 * highest version in that list (and `cniVersion`) that tidepool-cni supports. Undefined when none is.
 */
export function negotiateCniVersion(cniVersion: unknown, cniVersions: unknown): CniVersion | undefined {
  const offered = [...(Array.isArray(cniVersions) ? cniVersions : []), cniVersion];
  return [...SUPPORTED_CNI_VERSIONS].reverse().find((version) => offered.includes(version));
}

/** CHECK exists since spec 0.4.0; a 0.3.1 configuration cannot be checked. */
export function supportsCheck(version: CniVersion): boolean {
  return version !== '0.3.1';
}

/** GC and STATUS exist since spec 1.1.0. */
export function supportsGcAndStatus(version: CniVersion): boolean {
  return version === '1.1.0';
}

/** The body of a CNI error result, without its cniVersion. */
export interface CniError {
  code: number;
  msg: string;
  details?: string;
}

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** The key of spec 1.1.0's GC configuration that lists the attachments the runtime still has. */
export const VALID_ATTACHMENTS_KEY = 'cni.dev/valid-attachments';
