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

/** An error and its causes, outermost first: an ActivityFailure wraps the activity's ApplicationFailure, a client error its gRPC status. */
export function* errorCauses(error: unknown): Generator<Error> {
  for (let current = error; current instanceof Error; current = current.cause) yield current;
}
