// The failure that the parsers of one plugin invocation throw, and the helpers their messages use. The
// throw stays inside parseInvocation, which turns it into the CNI error to print.
import { showValue } from '../contract/values.ts';
import type { CniError } from './spec.ts';

export class InvocationProblem extends Error {
  readonly error: CniError;
  constructor(error: CniError) {
    super(error.msg);
    this.error = error;
  }
}

export function fail(code: number, msg: string, details?: string): never {
  throw new InvocationProblem(details === undefined ? { code, msg } : { code, msg, details });
}

/** A value as JSON for an error message, cut short so one bad field cannot flood the runtime's log. */
export function show(value: unknown): string {
  return showValue(value, 120);
}
