// Fuzz properties of the admission webhook: AdmissionReview bodies for createAdmission in-process, and raw
// HTTPS requests to the webhook process.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import type { KubeConfig } from '@kubernetes/client-node';
import { AdmissionReviewError, createAdmission, webhookPathOf } from '../../src/webhook/server.ts';
import { exchange, type HttpAnswer } from './http.ts';

/** A required field: mostly valid, else invalid or absent. */
const field = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 30, arbitrary: valid }, { weight: 2, arbitrary: invalid }, { weight: 1, arbitrary: fc.constant(undefined) });

/** A field of the AdmissionReview envelope: nearly always valid, so that most bodies reach the rules. */
const envelope = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 60, arbitrary: valid }, { weight: 1, arbitrary: invalid }, { weight: 1, arbitrary: fc.constant(undefined) });

/** An optional field: absent or valid, now and then invalid. */
const optional = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 15, arbitrary: fc.constant(undefined) }, { weight: 15, arbitrary: valid }, { weight: 1, arbitrary: invalid });

const anyText = (maxLength = 40) => fc.oneof(fc.string({ maxLength }), fc.string({ unit: 'binary', maxLength }));

/** Pool entries: IPs, ranges and CIDRs of both families, near misses, junk and very long strings. */
const ipEntry = fc.oneof(
  fc.constantFrom('10.250.0.10', '10.250.0.10-10.250.0.20', '10.250.0.20-10.250.0.10', 'fd00:250::10-fd00:250::ff', 'fd00:250::1'),
  fc.constantFrom('10.250.0.0/28', '10.250.0.256', '10.250.0.1-', '-', '::', '0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
  fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `10.250.${a % 2}.${b}`),
  fc.nat(1000).map((n) => `10.250.0.${'1'.repeat(n)}`),
  anyText(),
);

const ipList = field(fc.array(ipEntry, { maxLength: 6 }), fc.jsonValue());

const subnet = fc.oneof(
  fc.constantFrom('10.250.0.0/24', '10.250.0.0/16', 'fd00:250::/120', 'fd00:250::/64'),
  fc.constantFrom('10.250.0.0/33', '10.250.0.1/24', '0.0.0.0/0', '::/0', 'garbage', ''),
  fc.nat(40).map((prefix) => `10.250.0.0/${prefix}`),
);

const labelSelector = field(fc.record({ matchLabels: field(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), fc.jsonValue()) }), fc.jsonValue());

const poolSpec = fc.record({
  subnet: field(subnet, fc.jsonValue()),
  ips: ipList,
  excludeIPs: optional(ipList, fc.jsonValue()),
  gateway: optional(fc.constantFrom('10.250.0.1', 'fd00:250::1', '10.251.0.1', 'x'), fc.jsonValue()),
  ipVersion: optional(fc.constantFrom(4, 6, 5, '4'), fc.jsonValue()),
  routes: fc.oneof(
    fc.constant(undefined),
    fc.array(field(fc.record({ dst: field(fc.constantFrom('10.9.0.0/16', '0.0.0.0/0', 'fd09::/64'), fc.jsonValue()), gw: field(fc.constantFrom('10.250.0.1', '10.9.0.1'), fc.jsonValue()) }), fc.jsonValue()), { maxLength: 3 }),
    fc.jsonValue(),
  ),
  vlan: optional(fc.integer({ min: -1, max: 5000 }), fc.jsonValue()),
  default: optional(fc.boolean(), fc.jsonValue()),
  disable: optional(fc.boolean(), fc.jsonValue()),
  nodeName: optional(fc.array(fc.string({ maxLength: 10 })), fc.jsonValue()),
  nodeAffinity: optional(labelSelector, fc.jsonValue()),
});

const allocatedIPs = fc.dictionary(
  fc.oneof(fc.constantFrom('10.250.0.10', '10.250.0.11', 'fd00:250::10', 'not-an-ip'), anyText(10)),
  field(fc.record({ pod: field(fc.constant('ns/pod'), fc.jsonValue()), podUID: field(fc.constant('uid-1'), fc.jsonValue()) }), fc.jsonValue()),
  { maxKeys: 3 },
);

const metadata = fc.record({
  name: field(fc.constantFrom('fuzz-pool-a', 'fuzz-pool-b'), fc.jsonValue()),
  finalizers: optional(fc.array(fc.constantFrom('tidepool.dev/ip-protection', 'other')), fc.jsonValue()),
  deletionTimestamp: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('2026-01-01T00:00:00Z') }, { weight: 1, arbitrary: fc.jsonValue() }),
  labels: optional(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })), fc.jsonValue()),
});

const ipPool = fc.record({
  apiVersion: fc.constant('tidepool.dev/v1alpha1'),
  kind: fc.constant('IPPool'),
  metadata: field(metadata, fc.jsonValue()),
  spec: field(poolSpec, fc.jsonValue()),
  status: optional(fc.record({ allocatedIPs: field(allocatedIPs, fc.jsonValue()) }), fc.jsonValue()),
});

const reservedIP = fc.record({
  apiVersion: fc.constant('tidepool.dev/v1alpha1'),
  kind: fc.constant('ReservedIP'),
  metadata: field(metadata, fc.jsonValue()),
  spec: field(fc.record({ ips: ipList, ipVersion: optional(fc.constantFrom(4, 6), fc.jsonValue()) }), fc.jsonValue()),
});

const admissionObject = fc.oneof({ weight: 3, arbitrary: ipPool }, { weight: 2, arbitrary: reservedIP }, { weight: 1, arbitrary: fc.jsonValue() });

const admissionRequest = fc.record({
  uid: envelope(fc.uuid(), fc.oneof(fc.constant(''), fc.jsonValue())),
  kind: envelope(
    fc.record({ group: fc.constant('tidepool.dev'), version: fc.constant('v1alpha1'), kind: envelope(fc.constantFrom('IPPool', 'IPPool', 'IPPool', 'ReservedIP', 'ReservedIP', 'Pod'), fc.jsonValue()) }),
    fc.jsonValue(),
  ),
  operation: envelope(fc.constantFrom('CREATE', 'CREATE', 'UPDATE', 'UPDATE', 'DELETE', 'CONNECT'), fc.jsonValue()),
  subResource: fc.oneof({ weight: 20, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constant('status') }, { weight: 1, arbitrary: fc.jsonValue() }),
  name: fc.oneof({ weight: 10, arbitrary: fc.constant(undefined) }, { weight: 10, arbitrary: fc.constant('fuzz-pool-a') }, { weight: 1, arbitrary: fc.jsonValue() }),
  object: field(admissionObject, fc.jsonValue()),
  oldObject: field(admissionObject, fc.jsonValue()),
});

/** AdmissionReview bodies: well-formed envelopes around half-valid objects, broken envelopes, any JSON. */
export const admissionReview = fc.oneof(
  { weight: 20, arbitrary: fc.record({ apiVersion: envelope(fc.constant('admission.k8s.io/v1'), fc.jsonValue()), kind: envelope(fc.constant('AdmissionReview'), fc.jsonValue()), request: envelope(admissionRequest, fc.jsonValue()) }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

export const webhookPath = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('/mutate', '/validate', '/validate?timeout=10s') },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('/', '/other', '/mutate/', '//', '/validate#x'), fc.webPath()) },
);

/** JavaScript's own wording for a programming error: an answer must never pass one on. */
const RUNTIME_ERROR = /Cannot read propert|Cannot convert|is not a function|is not iterable|is not an object|Cannot destructure|Maximum call stack|Invalid array length/;

const requestUid = (review: unknown): unknown => (review as { request?: { uid?: unknown } } | null)?.request?.uid;

/** What is wrong with a 200 answer to `review`, if anything. */
export function admissionAnswerProblem(review: unknown, answer: unknown): string | undefined {
  const { apiVersion, kind, response } = (answer ?? {}) as { apiVersion?: unknown; kind?: unknown; response?: Record<string, unknown> };
  if (apiVersion !== 'admission.k8s.io/v1' || kind !== 'AdmissionReview' || typeof response !== 'object') return `not an AdmissionReview: ${JSON.stringify(answer)}`;
  if (response.uid !== requestUid(review)) return `response.uid ${JSON.stringify(response.uid)} is not the request's`;
  if (typeof response.allowed !== 'boolean') return 'response.allowed is not a boolean';
  if (!response.allowed) {
    const message = (response.status as { message?: unknown } | undefined)?.message;
    if (typeof message !== 'string' || message === '') return 'a refusal without a message';
    if (RUNTIME_ERROR.test(message)) return `a refusal that passes on a runtime error: ${message}`;
  }
  if (response.patch !== undefined) {
    if (response.patchType !== 'JSONPatch' || typeof response.patch !== 'string') return 'a patch without patchType JSONPatch';
    const operations = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown;
    if (!Array.isArray(operations) || !operations.every((op: { op?: unknown; path?: unknown }) => typeof op.op === 'string' && typeof op.path === 'string')) {
      return `the patch is not a JSON Patch: ${JSON.stringify(operations)}`;
    }
  }
  return undefined;
}

/** A refusal of the whole request (HTTP 400): what is wrong with its message, if anything. */
export function badRequestProblem(message: string): string | undefined {
  if (message === '') return 'a 400 without a message';
  if (RUNTIME_ERROR.test(message)) return `a 400 that passes on a runtime error: ${message}`;
  return undefined;
}

/**
 * createAdmission in-process (the /validate of a well-formed pool lists the real API server's pools): every
 * body gets a well-formed answer with the request's uid, or an AdmissionReviewError (the server's 400).
 */
export const admissionProperty = (kubeConfig: KubeConfig) => {
  const admit = createAdmission({ kubeConfig, refuseDeleteWithAllocatedIPs: true });
  return fc.asyncProperty(fc.tuple(webhookPath, admissionReview), async ([webhookPathname, review]) => {
    let answer: unknown;
    try {
      answer = await admit(webhookPathOf(webhookPathname), review);
    } catch (error) {
      if (!(error instanceof AdmissionReviewError)) throw new Error(`a crash instead of an answer or a 400: ${(error as Error).stack}`, { cause: error });
      const problem = badRequestProblem(error.message);
      if (problem) throw new Error(problem, { cause: error });
      return;
    }
    const problem = admissionAnswerProblem(review, answer);
    if (problem) throw new Error(problem);
  });
};

export interface WebhookProcess {
  port: number;
  log: string[];
  child: ChildProcess;
  stop: () => Promise<void>;
}

/** Starts src/webhook/main.ts on a free port with the given serving pair and kubeconfig; its log is kept. */
export async function startWebhookProcess(env: { kubeconfig: string; certFile: string; keyFile: string; extra?: Record<string, string> }): Promise<WebhookProcess> {
  const child = spawn(process.execPath, [path.join(import.meta.dirname, '../../src/webhook/main.ts')], {
    env: {
      ...process.env,
      KUBECONFIG: env.kubeconfig,
      TIDEPOOL_WEBHOOK_CERT_FILE: env.certFile,
      TIDEPOOL_WEBHOOK_KEY_FILE: env.keyFile,
      TIDEPOOL_WEBHOOK_PORT: '0',
      ...env.extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => log.push(line));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the webhook exited with ${code} before listening: ${log.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line);
      const entry = JSON.parse(line) as { msg: string; port?: number };
      if (entry.msg === 'tidepool webhook listening' && entry.port) resolve(entry.port);
    });
  });
  return {
    port,
    log,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** POSTs `body` to the webhook over HTTPS, trusting `ca`. */
export function postToWebhook(port: number, ca: string, webhookPathname: string, body: string | Buffer): Promise<HttpAnswer> {
  return exchange({ host: '127.0.0.1', port, path: webhookPathname, method: 'POST', ca, servername: 'localhost', headers: { 'content-type': 'application/json' } }, body);
}

/** Raw bodies: AdmissionReviews, cut-short JSON, arbitrary text and bytes, one big body now and then. */
const rawBody = fc.oneof(
  { weight: 8, arbitrary: admissionReview.map((review) => JSON.stringify(review) ?? '') },
  { weight: 2, arbitrary: fc.tuple(admissionReview, fc.nat()).map(([review, cut]) => (JSON.stringify(review) ?? '').slice(0, cut % 200)) },
  { weight: 1, arbitrary: anyText(200) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.nat(4).map((megabytes) => JSON.stringify({ kind: 'AdmissionReview', request: { uid: 'big', padding: 'x'.repeat((megabytes + 1) << 20) } })) },
);

/** The webhook process over HTTPS: a well-formed answer with the request's uid, or a 400 with a clear message. */
export const webhookProcessProperty = (webhook: WebhookProcess, ca: string) =>
  fc.asyncProperty(fc.tuple(webhookPath, rawBody), async ([webhookPathname, body]) => {
    const answer = await postToWebhook(webhook.port, ca, webhookPathname, body);
    if (answer.status === 400) {
      const problem = badRequestProblem(answer.body);
      if (problem) throw new Error(problem);
      return;
    }
    if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body}`);
    const review = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as unknown;
    const problem = admissionAnswerProblem(review, JSON.parse(answer.body));
    if (problem) throw new Error(problem);
  });
