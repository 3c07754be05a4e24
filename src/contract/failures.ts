/** Error types that activities throw as non-retryable ApplicationFailures, and the agent maps to CNI codes. */
export const FailureType = {
  NoFreeIP: 'NoFreeIP',
  PoolSelection: 'PoolSelection',
  PodNotFound: 'PodNotFound',
  PodUIDMismatch: 'PodUIDMismatch',
  InvalidPool: 'InvalidPool',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** The failure types no retry can fix: the lifecycle's activity options and the agent's mapping use this list. */
export const NON_RETRYABLE_FAILURES: readonly FailureType[] = Object.values(FailureType);

/** The type of a lifecycle workflow's own failure: no ADD of the pod succeeded before it stopped waiting. */
export const ALLOCATION_FAILED = 'AllocationFailed';

/** Failures that say the pod is gone or replaced: no later ADD of this pod UID can come. */
export const POD_GONE_FAILURES: readonly FailureType[] = [FailureType.PodNotFound, FailureType.PodUIDMismatch];

/** An error and its causes, outermost first: an ActivityFailure wraps the activity's ApplicationFailure, a client error its gRPC status. */
export function* errorCauses(error: unknown): Generator<Error> {
  for (let current = error; current instanceof Error; current = current.cause) yield current;
}
