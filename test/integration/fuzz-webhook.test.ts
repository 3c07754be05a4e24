// Fuzzing the admission webhook with modest run counts; `npm run fuzz` runs the same properties with large ones.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackPaths } from '../../stack/config.ts';
import { admissionProperty, postToWebhook, startWebhookProcess, webhookProcessProperty, type WebhookProcess } from '../fuzz/webhook.ts';
import { assertNoFailure, fuzz } from '../fuzz/run.ts';
import { caCert, kubeConfig, stack } from '../harness/cluster.ts';

const review = (uid: string, object: unknown) =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { kind: 'IPPool' }, operation: 'CREATE', object } });

describe('fuzz: admission webhook', () => {
  it('in-process: every AdmissionReview body gets a well-formed answer with its uid, or a clear 400', async () => {
    assertNoFailure(await fuzz('webhook-admission', admissionProperty(kubeConfig()), 1000));
  });

  describe('the webhook process over HTTPS', () => {
    let webhook: WebhookProcess;
    beforeAll(async () => {
      const paths = stackPaths();
      webhook = await startWebhookProcess({ kubeconfig: stack().kubeconfig, certFile: paths.servingCert, keyFile: paths.servingKey });
    });
    afterAll(() => webhook.stop());

    it('answers every body with an AdmissionReview with its uid or a clear 400, and keeps running', async () => {
      assertNoFailure(await fuzz('webhook-https', webhookProcessProperty(webhook, caCert()), 60));
      expect(webhook.child.exitCode).toBeNull();
    });

    it('regression: survives a request target of "//", which new URL() cannot parse', async () => {
      const answer = await postToWebhook(webhook.port, caCert(), '//', review('u-1', {}));
      expect(answer).toEqual({ status: 400, body: 'no such webhook path //: the webhooks are /mutate and /validate' });
      expect(webhook.child.exitCode).toBeNull();
    });

    it('regression: refuses a pool whose spec.ips is not a list with a message, not a TypeError', async () => {
      const body = review('u-2', { apiVersion: 'tidepool.dev/v1alpha1', kind: 'IPPool', metadata: { name: 'p' }, spec: { subnet: '10.250.0.0/24', ips: '10.250.0.5' } });
      const answer = await postToWebhook(webhook.port, caCert(), '/validate', body);
      expect(JSON.parse(answer.body)).toMatchObject({ response: { uid: 'u-2', allowed: false, status: { message: 'object.spec.ips: must be a list, got "10.250.0.5"' } } });
    });

    it('regression: answers an AdmissionReview without request.kind with a 400 that names it, not a TypeError', async () => {
      const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-4', operation: 'CREATE', object: {} } });
      const answer = await postToWebhook(webhook.port, caCert(), '/mutate', body);
      expect(answer).toEqual({ status: 400, body: 'not an AdmissionReview this webhook answers: request.kind: must be an object, got nothing' });
    });

    it('refuses a body over 16 MiB with 413 without reading it into memory', async () => {
      const answer = await postToWebhook(webhook.port, caCert(), '/validate', Buffer.alloc(17 << 20, 0x20));
      expect(answer.status).toBe(413);
      expect(webhook.child.exitCode).toBeNull();
    });

    it('serves TLS only: a plain HTTP request gets no HTTP answer', async () => {
      const outcome = await new Promise<string>((resolve) => {
        const request = http.request({ host: '127.0.0.1', port: webhook.port, path: '/validate', method: 'POST', timeout: 5000 }, (response) =>
          resolve(`HTTP ${response.statusCode}`),
        );
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', (error) => resolve(`error ${(error as NodeJS.ErrnoException).code ?? error.message}`));
        request.end(review('u-3', {}));
      });
      expect(outcome).toMatch(/^error (ECONNRESET|EPIPE)$/);
    });
  });
});
