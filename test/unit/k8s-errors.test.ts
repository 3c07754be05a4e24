import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeApiError, kubeCall, kubeGetOptional } from '../../src/k8s/errors.ts';

const status = (code: number, reason: string, message: string) =>
  JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });

async function failWith(error: unknown): Promise<never> {
  throw error;
}

describe('KubeApiError', () => {
  it('tells a resourceVersion conflict from AlreadyExists, both 409', async () => {
    const conflict = await kubeCall('update IPPool a status', () =>
      failWith(new ApiException(409, 'conflict', status(409, 'Conflict', 'the object has been modified'), {})),
    ).catch((e: unknown) => e as KubeApiError);
    expect(conflict).toBeInstanceOf(KubeApiError);
    expect([conflict.conflict, conflict.alreadyExists]).toEqual([true, false]);
    expect(conflict.message).toBe('update IPPool a status: the object has been modified');

    const exists = await kubeCall('create IPPool a', () =>
      failWith(new ApiException(409, 'exists', status(409, 'AlreadyExists', 'ippools "a" already exists'), {})),
    ).catch((e: unknown) => e as KubeApiError);
    expect([exists.conflict, exists.alreadyExists]).toEqual([false, true]);
  });

  it('accepts a Status body that is already parsed, or not JSON at all', async () => {
    const parsed = await kubeCall('x', () =>
      failWith(new ApiException(422, 'invalid', { reason: 'Invalid', message: 'spec.subnet: Invalid value' }, {})),
    ).catch((e: unknown) => e as KubeApiError);
    expect([parsed.code, parsed.reason, parsed.message]).toEqual([422, 'Invalid', 'x: spec.subnet: Invalid value']);
    const text = await kubeCall('y', () => failWith(new ApiException(502, 'bad gateway', 'upstream down', {}))).catch(
      (e: unknown) => e as KubeApiError,
    );
    expect(text.message).toBe('y: upstream down');
  });

  it('gives undefined for 404 from kubeGetOptional and rethrows everything else', async () => {
    await expect(
      kubeGetOptional('get IPPool a', () => failWith(new ApiException(404, 'nf', status(404, 'NotFound', 'not found'), {}))),
    ).resolves.toBeUndefined();
    await expect(
      kubeGetOptional('get IPPool a', () => failWith(new ApiException(403, 'f', status(403, 'Forbidden', 'denied'), {}))),
    ).rejects.toThrow('get IPPool a: denied');
  });

  it('says the API server could not be reached when the call fails without a response', async () => {
    await expect(kubeCall('list IPPools', () => failWith(new TypeError('fetch failed')))).rejects.toThrow(
      'list IPPools: the API server could not be reached (fetch failed)',
    );
  });
});
