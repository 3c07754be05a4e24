import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { TidepoolClient } from '../k8s/client.ts';
import type { IPPool, ReservedIP } from '../k8s/types.ts';
import { deleteProblem, overlapProblems, poolMutations, reservedIPProblems, specProblems, updateProblems, type PatchOperation } from './pool-rules.ts';
import { admissionReviewProblems, ipPoolShapeProblems, reservedIPShapeProblems, type ADMISSION_OPERATIONS } from './shapes.ts';

/** The largest AdmissionReview read: the API server's objects are at most ~3 MiB, and a review carries two. */
const MAX_REVIEW_BYTES = 16 * 1024 * 1024;

interface AdmissionRequest {
  uid: string;
  kind: { kind: string };
  operation: (typeof ADMISSION_OPERATIONS)[number];
  subResource?: string;
  name?: string;
  object?: unknown;
  oldObject?: unknown;
}

interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
}

export interface WebhookOptions {
  kubeConfig: KubeConfig;
  /** Refuse to delete an IPPool that still has allocated IPs (Spiderpool's default); off lets it terminate. */
  refuseDeleteWithAllocatedIPs: boolean;
  /** Told of every decision, for the log. */
  onDecision?: (decision: AdmissionDecision) => void;
}

export interface AdmissionDecision {
  webhook: string;
  operation: string;
  kind: string;
  name?: string;
  allowed: boolean;
  message?: string;
  patched?: string[];
}

/** A body that is not an AdmissionReview this webhook can decide: the server answers it with HTTP 400. */
export class AdmissionReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdmissionReviewError';
  }
}

interface Verdict {
  problems: string[];
  patch?: PatchOperation[];
}

function response(uid: string, { problems, patch }: Verdict) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: problems.length === 0,
      ...(problems.length > 0 ? { status: { code: 422, reason: 'Invalid', message: problems.join('; ') } } : {}),
      ...(patch && patch.length > 0 ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    },
  };
}

/** Decides one AdmissionReview for IPPools and ReservedIPs: `/mutate` patches, `/validate` allows or refuses. */
export function createAdmission(options: WebhookOptions) {
  const client = new TidepoolClient(options.kubeConfig);
  const allow: Verdict = { problems: [] };
  const decide = async (path: string, request: AdmissionRequest): Promise<Verdict> => {
    const kind = request.kind.kind;
    if (path === '/mutate') {
      if (kind !== 'IPPool' || request.subResource || (request.operation !== 'CREATE' && request.operation !== 'UPDATE')) return allow;
      // A malformed pool gets no patch; the API server's schema validation, which follows, refuses it.
      if (ipPoolShapeProblems(request.object).length > 0) return allow;
      return { problems: [], patch: poolMutations(request.object as IPPool, request.operation === 'CREATE') };
    }
    if (path !== '/validate') throw new AdmissionReviewError(`no such webhook path ${path}: the webhooks are /mutate and /validate`);
    if (kind === 'ReservedIP') {
      if (request.operation === 'DELETE') return allow;
      const shape = reservedIPShapeProblems(request.object, 'object');
      return { problems: shape.length > 0 ? shape : reservedIPProblems(request.object as ReservedIP) };
    }
    if (kind !== 'IPPool' || request.subResource || request.operation === 'CONNECT') return allow;
    const shape = [
      ...(request.operation === 'DELETE' ? [] : ipPoolShapeProblems(request.object, 'object')),
      ...(request.operation === 'CREATE' ? [] : ipPoolShapeProblems(request.oldObject, 'oldObject')),
    ];
    if (shape.length > 0) return { problems: shape };
    if (request.operation === 'DELETE') {
      const problem = deleteProblem(request.oldObject as IPPool, options.refuseDeleteWithAllocatedIPs);
      return { problems: problem ? [problem] : [] };
    }
    const pool = request.object as IPPool;
    const problems = specProblems(pool.spec);
    if (request.operation === 'UPDATE') problems.push(...updateProblems(request.oldObject as IPPool, pool));
    if (problems.length === 0) problems.push(...overlapProblems(pool, (await client.listPools()).items));
    return { problems };
  };
  return async (path: string, review: unknown) => {
    const malformed = admissionReviewProblems(review);
    if (malformed.length > 0) throw new AdmissionReviewError(`not an AdmissionReview this webhook answers: ${malformed.join('; ')}`);
    const request = (review as AdmissionReview).request!;
    const verdict = await decide(path, request);
    const name = request.name ?? (request.object as { metadata?: { name?: string } } | undefined)?.metadata?.name;
    options.onDecision?.({
      webhook: path,
      operation: request.operation,
      kind: request.kind.kind,
      ...(name ? { name } : {}),
      allowed: verdict.problems.length === 0,
      ...(verdict.problems.length > 0 ? { message: verdict.problems.join('; ') } : {}),
      ...(verdict.patch && verdict.patch.length > 0 ? { patched: verdict.patch.map((operation) => operation.path) } : {}),
    });
    return response(request.uid, verdict);
  };
}

/**
 * The path that names the webhook in a request target: the API server appends `?timeout=...`. Taken apart by
 * hand, as `new URL()` throws on a target such as `//`.
 */
export function webhookPathOf(target = '/'): string {
  return target.split('?')[0] ?? '';
}

/** Serves the admission webhooks over TLS only, on `host:port` (port 0 picks a free one). */
export async function serveWebhook(
  options: WebhookOptions & { host: string; port: number; cert: string | Buffer; key: string | Buffer },
): Promise<{ server: https.Server; port: number }> {
  const admit = createAdmission(options);
  const server = https.createServer({ cert: options.cert, key: options.key }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REVIEW_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_REVIEW_BYTES) {
        res.writeHead(413).end(`AdmissionReview is larger than ${MAX_REVIEW_BYTES} bytes`);
        return;
      }
      let review: unknown;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      } catch (error) {
        res.writeHead(400).end(`AdmissionReview is not JSON: ${(error as Error).message}`);
        return;
      }
      admit(webhookPathOf(req.url), review).then(
        (answer) => {
          const body = JSON.stringify(answer);
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
        },
        (error: unknown) => {
          if (error instanceof AdmissionReviewError) {
            res.writeHead(400).end(error.message);
          } else {
            res.writeHead(500).end(`tidepool webhook failed: ${(error as Error).message}`);
          }
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : options.port };
}
