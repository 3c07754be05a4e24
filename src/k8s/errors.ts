import { ApiException } from '@kubernetes/client-node';

/** The parts of a Kubernetes `Status` that callers act on. */
export interface KubeStatus {
  code: number;
  reason?: string;
  message?: string;
}

/** A failed API call, with the HTTP code and the Status reason (`Conflict`, `AlreadyExists`, `Invalid`, ...). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string | undefined;

  constructor(operation: string, status: KubeStatus, options?: ErrorOptions) {
    super(`${operation}: ${status.message ?? status.reason ?? `HTTP ${status.code}`}`, options);
    this.name = 'KubeApiError';
    this.code = status.code;
    this.reason = status.reason;
  }

  get notFound(): boolean {
    return this.code === 404;
  }

  /** The object changed since it was read (stale resourceVersion): read it again and retry. */
  get conflict(): boolean {
    return this.code === 409 && this.reason !== 'AlreadyExists';
  }

  get alreadyExists(): boolean {
    return this.code === 409 && this.reason === 'AlreadyExists';
  }
}

function statusOf(error: ApiException<unknown>): KubeStatus {
  let body: unknown = error.body;
  if (typeof error.body === 'string') {
    const text = error.body;
    try {
      body = JSON.parse(text);
    } catch {
      return { code: error.code, message: text || error.message };
    }
  }
  const status = (body ?? {}) as Partial<KubeStatus>;
  return { code: error.code, reason: status.reason, message: status.message ?? error.message };
}

/** Runs an API call and turns the client's ApiException into a KubeApiError that names the operation. */
export async function kubeCall<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiException) throw new KubeApiError(operation, statusOf(error), { cause: error });
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${operation}: the API server could not be reached (${message})`, { cause: error });
  }
}

/** Like kubeCall, but a 404 gives undefined. */
export async function kubeGetOptional<T>(operation: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await kubeCall(operation, call);
  } catch (error) {
    if (error instanceof KubeApiError && error.notFound) return undefined;
    throw error;
  }
}
