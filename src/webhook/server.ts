import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { TidepoolClient } from '../k8s/client.ts';
import type { IPPool, ReservedIP } from '../k8s/types.ts';
import { deleteProblem, overlapProblems, poolMutations, reservedIPProblems, specProblems, updateProblems, type PatchOperation } from './pool-rules.ts';

interface AdmissionRequest {
  uid: string;
  kind: { kind: string };
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
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
      return { problems: [], patch: poolMutations(request.object as IPPool, request.operation === 'CREATE') };
    }
    if (path !== '/validate') throw new Error(`no such webhook path ${path}`);
    if (kind === 'ReservedIP') {
      return { problems: request.operation === 'DELETE' ? [] : reservedIPProblems(request.object as ReservedIP) };
    }
    if (kind !== 'IPPool' || request.subResource) return allow;
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
  return async (path: string, review: AdmissionReview) => {
    const request = review.request;
    if (!request?.uid) throw new Error('AdmissionReview without a request uid');
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

/** Serves the admission webhooks over TLS only, on `host:port` (port 0 picks a free one). */
export async function serveWebhook(
  options: WebhookOptions & { host: string; port: number; cert: string | Buffer; key: string | Buffer },
): Promise<{ server: https.Server; port: number }> {
  const admit = createAdmission(options);
  const server = https.createServer({ cert: options.cert, key: options.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let review: AdmissionReview;
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
      } catch (error) {
        res.writeHead(400).end(`AdmissionReview is not JSON: ${(error as Error).message}`);
        return;
      }
      // The API server appends ?timeout=...; only the path names the webhook.
      admit(new URL(req.url ?? '/', 'https://webhook').pathname, review).then(
        (answer) => {
          const body = JSON.stringify(answer);
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
        },
        (error: unknown) => res.writeHead(400).end((error as Error).message),
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
