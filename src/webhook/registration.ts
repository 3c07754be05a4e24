import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration, AdmissionregistrationV1WebhookClientConfig, V1LabelSelector } from '@kubernetes/client-node';

/**
 * failurePolicy Fail for both webhooks. Only IPPool and ReservedIP spec and metadata writes go through them:
 * allocation writes the pools' status subresource and PodEndpoints, which no rule matches, so a webhook outage
 * blocks pool edits but never a pod's start or a release. Ignore would let an unchecked pool in (overlapping
 * another, or without the ip-protection finalizer, so deletable under its pods) while the webhook is down.
 */
export const WEBHOOK_FAILURE_POLICY = 'Fail';

export interface WebhookRegistration {
  name: string;
  /** Where the API server reaches the webhook: a Service in a cluster, a URL for the local stack. */
  clientConfig: (path: '/mutate' | '/validate') => AdmissionregistrationV1WebhookClientConfig;
  /** Confines the webhooks to matching objects (the tests use it to keep their webhook to their own objects). */
  objectSelector?: V1LabelSelector;
  timeoutSeconds?: number;
}

/** The mutating and validating webhook configurations that route IPPool and ReservedIP admission to Tidepool. */
export function webhookConfigurations(registration: WebhookRegistration): {
  mutating: V1MutatingWebhookConfiguration;
  validating: V1ValidatingWebhookConfiguration;
} {
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: WEBHOOK_FAILURE_POLICY,
    matchPolicy: 'Equivalent',
    timeoutSeconds: registration.timeoutSeconds ?? 10,
    ...(registration.objectSelector ? { objectSelector: registration.objectSelector } : {}),
  };
  const rule = (operations: string[], resources: string[]) => ({ apiGroups: ['tidepool.dev'], apiVersions: ['v1alpha1'], operations, resources, scope: 'Cluster' });
  return {
    mutating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: registration.name },
      webhooks: [
        { name: 'ippools.mutate.tidepool.dev', clientConfig: registration.clientConfig('/mutate'), rules: [rule(['CREATE', 'UPDATE'], ['ippools'])], reinvocationPolicy: 'Never', ...common },
      ],
    },
    validating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: registration.name },
      webhooks: [
        { name: 'pools.validate.tidepool.dev', clientConfig: registration.clientConfig('/validate'), rules: [rule(['CREATE', 'UPDATE', 'DELETE'], ['ippools', 'reservedips'])], ...common },
      ],
    },
  };
}
