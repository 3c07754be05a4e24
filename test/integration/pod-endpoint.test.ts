import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { createEndpointActivities } from '../../src/activities/endpoints.ts';
import { kubeConfig } from '../harness/cluster.ts';

describe('writePodEndpoint', () => {
  it('fails without retries, as PodNotFound, when the pod’s namespace is gone, so the lifecycle gives the IPs back instead of retrying for ever', async () => {
    const activities = createEndpointActivities({ kubeConfig: kubeConfig() });
    const namespace = `gone-${randomBytes(3).toString('hex')}`;
    const failure = await activities
      .writePodEndpoint({ namespace, pod: 'web-0', podUID: 'uid-1', interfaces: { eth0: { containerID: 'c1', ips: [{ ip: '10.98.0.1', address: '10.98.0.1/24', version: 4, pool: 'p' }] } } })
      .then(() => undefined, (error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type: 'PodNotFound', nonRetryable: true, message: `namespace ${namespace} is gone, and pod ${namespace}/web-0 with it: no PodEndpoint to write` });
  });
});
