// The shapes the webhook's rules read: an AdmissionReview request, and the fields of IPPools and ReservedIPs
// that pool-rules.ts uses. The mutating webhook runs before the API server checks the CRD schema, so an
// object can arrive with any JSON in any field; a shape problem is said plainly instead of failing a rule. Pure.
import { isObject, showValue } from '../contract/values.ts';

/** What is wrong with a value, each problem naming its path; empty when nothing is. */
type Check = (value: unknown, at: string) => string[];


const join = (at: string, key: string) => (at === '' ? key : `${at}.${key}`);

const string: Check = (value, at) => (typeof value === 'string' ? [] : [`${at}: must be a string, got ${showValue(value)}`]);

const optional =
  (check: Check): Check =>
  (value, at) =>
    value === undefined ? [] : check(value, at);

const oneOf =
  (...allowed: unknown[]): Check =>
  (value, at) =>
    allowed.includes(value) ? [] : [`${at}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}, got ${showValue(value)}`];

const list =
  (check: Check): Check =>
  (value, at) =>
    Array.isArray(value) ? value.flatMap((entry, index) => check(entry, `${at}[${index}]`)) : [`${at}: must be a list, got ${showValue(value)}`];

const object =
  (fields: Record<string, Check>): Check =>
  (value, at) =>
    isObject(value)
      ? Object.entries(fields).flatMap(([key, check]) => check(value[key], join(at, key)))
      : [`${at || 'the object'}: must be an object, got ${showValue(value)}`];

const map =
  (check: Check): Check =>
  (value, at) =>
    isObject(value) ? Object.entries(value).flatMap(([key, entry]) => check(entry, `${at}[${JSON.stringify(key)}]`)) : [`${at}: must be an object, got ${showValue(value)}`];

const metadata = object({ name: optional(string), finalizers: optional(list(string)), deletionTimestamp: optional(string) });

const ipPool = object({
  metadata,
  spec: object({
    subnet: string,
    ips: optional(list(string)),
    excludeIPs: optional(list(string)),
    gateway: optional(string),
    ipVersion: optional(oneOf(4, 6)),
    routes: optional(list(object({ dst: string, gw: string }))),
  }),
  status: optional(object({ allocatedIPs: optional(map(object({ pod: string }))) })),
});

const reservedIP = object({ metadata, spec: object({ ips: optional(list(string)), ipVersion: optional(oneOf(4, 6)) }) });

/** What keeps `value` from being read as an IPPool by the rules, each problem prefixed with `at`. */
export const ipPoolShapeProblems = (value: unknown, at = ''): string[] => ipPool(value, at);

/** What keeps `value` from being read as a ReservedIP by the rules. */
export const reservedIPShapeProblems = (value: unknown, at = ''): string[] => reservedIP(value, at);

export const ADMISSION_OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

const admissionReview = object({
  apiVersion: oneOf('admission.k8s.io/v1'),
  kind: oneOf('AdmissionReview'),
  request: object({
    uid: (value, at) => (typeof value === 'string' && value !== '' ? [] : [`${at}: must be a non-empty string, got ${showValue(value)}`]),
    kind: object({ kind: string }),
    operation: oneOf(...ADMISSION_OPERATIONS),
    subResource: optional(string),
    name: optional(string),
  }),
});

/** What keeps `value` from being an AdmissionReview request this webhook can answer. */
export const admissionReviewProblems = (value: unknown): string[] => admissionReview(value, '');
