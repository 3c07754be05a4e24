import { FailureType } from './failures.ts';

/**
 * Every CNI error code Tidepool answers with: the well-known codes of the spec (0-99 are reserved; 999 is
 * libcni's "internal error"), then Tidepool's plugin-specific codes (100 and up, as the spec reserves for
 * plugins). The plugin, the agent and its socket server all take their codes from here.
 */
export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  /** STATUS: the plugin cannot serve ADDs now (the agent, Temporal or every worker is away). */
  PluginNotAvailable: 50,
  Internal: 999,
  /** No pool the pod may use has a free IP. */
  NoFreeIP: 100,
  /** No usable pool for the pod: none named, unknown, terminating, disabled, wrong family or not matching. */
  PoolSelection: 101,
  /** The pod does not exist, or the ADD is for a UID the pod no longer has. */
  PodMismatch: 102,
  /** A pool the pod would use has a spec Tidepool cannot parse. */
  InvalidPool: 103,
  /** CHECK: Tidepool holds no such IP for the attachment. */
  NotAllocated: 104,
} as const;

/** The CNI code a typed allocation failure is answered with. */
export const CNI_CODE_OF_FAILURE: Record<FailureType, number> = {
  [FailureType.NoFreeIP]: CniErrorCode.NoFreeIP,
  [FailureType.PoolSelection]: CniErrorCode.PoolSelection,
  [FailureType.PodNotFound]: CniErrorCode.PodMismatch,
  [FailureType.PodUIDMismatch]: CniErrorCode.PodMismatch,
  [FailureType.InvalidPool]: CniErrorCode.InvalidPool,
};
