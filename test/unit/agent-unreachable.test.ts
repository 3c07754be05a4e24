import { ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { isUnreachable } from '../../src/agent/agent.ts';

/** gRPC status codes, as @grpc/grpc-js numbers them. */
const status = { CANCELLED: 1, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, FAILED_PRECONDITION: 9, UNAVAILABLE: 14 } as const;

/** The shape of @grpc/grpc-js's ServiceError, which the Temporal client recognises by its fields. */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code}: ${details}`), { code, details, metadata: {} });
}

describe('the agent tells an unreachable Temporal from other failures', () => {
  it('a connection lost after connecting: the client wraps UNAVAILABLE in "Update-With-Start failed"', () => {
    // Seen when the Temporal server was stopped under a connected agent: the ADD failed with code 5 and this message.
    const error = new ServiceError('Update-With-Start failed', { cause: grpcError(status.UNAVAILABLE, 'No connection established') });
    expect(error.message).not.toMatch(/unavailable|connect|deadline/i);
    expect(isUnreachable(error)).toBe(true);
  });

  it('deadlines and timeouts of the update call', () => {
    expect(isUnreachable(new WorkflowUpdateRPCTimeoutOrCancelledError('Workflow update call timeout or cancelled'))).toBe(true);
    expect(isUnreachable(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'))).toBe(true);
  });

  it('a query no worker answers, and a deadline passed on the client side (a status without metadata)', () => {
    const noPoller = grpcError(status.FAILED_PRECONDITION, 'no poller seen for task queue recently');
    expect(isUnreachable(new ServiceError('Failed to query Workflow', { cause: noPoller }))).toBe(true);
    const clientDeadline = Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: status.DEADLINE_EXCEEDED });
    expect(isUnreachable(new ServiceError('Failed to query Workflow', { cause: clientDeadline }))).toBe(true);
    expect(isUnreachable(new ServiceError('Failed to query Workflow', { cause: grpcError(status.CANCELLED, 'Cancelled on client') }))).toBe(true);
  });

  it('an answer from Temporal is not unreachability', () => {
    expect(isUnreachable(new ServiceError('Failed to query Workflow', { cause: grpcError(status.FAILED_PRECONDITION, 'workflow closed') }))).toBe(false);
    expect(isUnreachable(new ServiceError('Update-With-Start failed', { cause: grpcError(status.INVALID_ARGUMENT, 'bad request') }))).toBe(false);
    expect(isUnreachable(new Error('pool pool-a is being deleted'))).toBe(false);
    expect(isUnreachable('not an error')).toBe(false);
  });
});
