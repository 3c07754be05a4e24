import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, NamespaceNotFoundError } from '@temporalio/common';
import {
  isGrpcServiceError,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import type { AgentAddRequest, AgentAddResponse, AgentAttachment, AgentCheckRequest, AgentGcRequest } from '../contract/agent-api.ts';
import type { RuntimeGcResult, RuntimeGcWorkflow } from '../contract/runtime-gc.ts';
import { attachmentProblem } from './requests.ts';
import { listSpooledDels, removeSpooledDel, spoolDel } from '../cni/spool.ts';
import { CNI_CODE_OF_FAILURE, CniErrorCode } from '../contract/cni-codes.ts';
import { errorCauses, type FailureType } from '../contract/failures.ts';
import { podLifecycleWorkflowId, runtimeGcWorkflowId, TASK_QUEUE } from '../temporal/names.ts';
import { lifecycleStartOptions } from '../temporal/lifecycle-start.ts';
import { allocateUpdate, releaseUpdate, stateQuery, type PodIP, type PodIPLifecycleWorkflow } from '../contract/lifecycle.ts';
import { shortContainerID } from '../temporal/lifecycle-details.ts';
import type { Log } from '../log.ts';
import { parseDuration } from '../config.ts';
import { NODE_DEFAULTS } from '../contract/defaults.ts';

/** How long an ADD waits before it asks again after Temporal answered that its namespace is unknown. */
const NAMESPACE_RETRY_MS = 500;

/**
 * Runs `call` again while Temporal answers that the namespace is unknown, until `deadline`. A Temporal server
 * whose database has just restarted answers so for a moment (seen here after a PostgreSQL restart); a
 * namespace that really does not exist is reported once the deadline is near.
 */
async function retryWhileNamespaceUnknown<T>(call: () => Promise<T>, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof NamespaceNotFoundError) || Date.now() + NAMESPACE_RETRY_MS >= deadline) throw error;
      await sleep(NAMESPACE_RETRY_MS);
    }
  }
}

/** A failure the CNI plugin passes on as a CNI error: `code` is a CNI error code. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, message: string, details?: string) {
    super(message);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}


export interface AgentOptions {
  client: Client;
  temporalAddress: string;
  nodeName: string;
  addTimeoutMs: number;
  /** The deadline of DEL, CHECK and GC. */
  delTimeoutMs: number;
  /** NODE_DEFAULTS.agentStatusTimeout when absent. */
  statusTimeoutMs?: number;
  spoolDir: string;
  taskQueue?: string;
  log?: Log;
}

/** Checks the fields the CNI plugin derives from CNI_* and CNI_ARGS, by the plugin's own rules; throws CniError code 4 naming them. */
export function validateAttachment(body: unknown): AgentAttachment {
  const problem = attachmentProblem(body);
  if (problem !== undefined) throw new CniError(CniErrorCode.InvalidEnvironment, problem);
  return body as AgentAttachment;
}

/** gRPC CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE: Temporal did not answer, and may later. */
const TRY_AGAIN_GRPC_CODES: readonly number[] = [1, 4, 14];
const FAILED_PRECONDITION = 9;

/**
 * Whether Temporal, or a worker behind it, did not answer in time: the client wraps the gRPC status of a lost
 * connection or a passed deadline in a ServiceError ("Update-With-Start failed", "Failed to query Workflow"),
 * so the whole cause chain is read. A query no worker can answer fails with FAILED_PRECONDITION "no poller
 * seen for task queue recently". A deadline passed on the client side leaves a status without metadata, so
 * the code is read without isGrpcServiceError().
 */
export function isUnreachable(error: unknown): boolean {
  for (const current of errorCauses(error)) {
    const code = (current as Error & { code?: unknown }).code;
    if (
      current instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
      (typeof code === 'number' && (TRY_AGAIN_GRPC_CODES.includes(code) || (code === FAILED_PRECONDITION && /no poller/i.test(current.message)))) ||
      /deadline|unavailable|connect|ECONNREFUSED/i.test(current.message)
    ) {
      return true;
    }
  }
  return false;
}

/** The innermost message of an error's cause chain: the gRPC status rather than the client's wrapper. */
function rootMessage(error: unknown): string {
  let message = String(error);
  for (const current of errorCauses(error)) message = current.message;
  return message;
}

/**
 * Temporal lists a poller for minutes after its worker died; a live worker starts a long poll (at most about a
 * minute) again as soon as the last one returns, so a poller seen within this window is a worker polling now.
 */
const POLLER_SEEN_WITHIN_MS = 120_000;

function timestampMs(timestamp: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined): number {
  const seconds = timestamp?.seconds;
  return (typeof seconds === 'number' ? seconds : (seconds?.toNumber() ?? 0)) * 1000 + Math.floor((timestamp?.nanos ?? 0) / 1e6);
}

function routesOf(ips: PodIP[]): AgentAddResponse['routes'] {
  return ips.flatMap((ip) => (ip.routes ?? []).map((route) => ({ dst: route.dst, gw: route.gw })));
}

/**
 * The node agent's logic: turns CNI ADD, DEL and CHECK into updates and queries of the pod's lifecycle
 * workflow. ADD has a bounded deadline; a DEL that cannot reach Temporal goes to the on-node spool and is
 * replayed, so it is never lost.
 */
export function createAgent(options: AgentOptions) {
  const { client } = options;
  const taskQueue = options.taskQueue ?? TASK_QUEUE;
  const log = options.log ?? (() => {});

  async function add(body: unknown): Promise<AgentAddResponse> {
    const ref = validateAttachment(body);
    const request = body as Partial<AgentAddRequest>;
    const podName = `${ref.podNamespace}/${ref.podName}`;
    // Where the ADD came from; the lifecycle records the node the pod's spec names, where it actually runs.
    const node = request.node ?? options.nodeName;
    // An operation runs once: each attempt gets its own.
    const start = () =>
      new WithStartWorkflowOperation<PodIPLifecycleWorkflow>('podIPLifecycle', {
        ...lifecycleStartOptions(
          {
            namespace: ref.podNamespace,
            pod: ref.podName,
            podUID: ref.podUID,
            ...(node ? { node } : {}),
            state: 'Allocating',
            startedBy: `CNI ADD of container ${shortContainerID(ref.containerID)} on interface ${ref.interface}`,
          },
          taskQueue,
        ),
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
    const deadline = Date.now() + options.addTimeoutMs;
    const allocate = () =>
      client.withDeadline(deadline, () =>
        client.workflow.executeUpdateWithStart(allocateUpdate, {
          args: [
            {
              podUID: ref.podUID,
              containerID: ref.containerID,
              interface: ref.interface,
              defaultPools: { ipv4: request.defaultPools?.ipv4 ?? [], ipv6: request.defaultPools?.ipv6 ?? [] },
              ...(request.network ? { network: request.network } : {}),
              ...(node ? { node } : {}),
            },
          ],
          startWorkflowOperation: start(),
        }),
      );
    try {
      const result = await retryWhileNamespaceUnknown(allocate, deadline);
      return {
        ips: result.ips.map((ip) => ({ address: ip.address, version: ip.version, ...(ip.gateway ? { gateway: ip.gateway } : {}) })),
        routes: routesOf(result.ips),
      };
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) {
        const cause = error.cause;
        const type = cause instanceof ApplicationFailure ? cause.type ?? '' : '';
        const code = CNI_CODE_OF_FAILURE[type as FailureType] ?? CniErrorCode.InvalidEnvironment;
        throw new CniError(code, cause?.message ?? error.message);
      }
      if (error instanceof NamespaceNotFoundError) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `Tidepool did not allocate an IP for pod ${podName} within ${options.addTimeoutMs / 1000} s: ` +
            `Temporal at ${options.temporalAddress} does not know namespace ${error.namespace}; is TEMPORAL_NAMESPACE right?`,
        );
      }
      if (isUnreachable(error)) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `Tidepool did not allocate an IP for pod ${podName} within ${options.addTimeoutMs / 1000} s: ` +
            `is Temporal reachable at ${options.temporalAddress} and a tidepool worker polling task queue ${taskQueue}?`,
          rootMessage(error),
        );
      }
      throw error;
    }
  }

  /** Releases through the lifecycle; returns false when Temporal could not be reached (the caller spools). */
  async function release(ref: AgentAttachment): Promise<boolean> {
    const handle = client.workflow.getHandle(podLifecycleWorkflowId(ref.podNamespace, ref.podName));
    try {
      const result = await client.withDeadline(Date.now() + options.delTimeoutMs, () =>
        handle.executeUpdate(releaseUpdate, {
          args: [{ podUID: ref.podUID, containerID: ref.containerID, interface: ref.interface }],
        }),
      );
      log('info', 'CNI DEL', { pod: `${ref.podNamespace}/${ref.podName}`, interface: ref.interface, ...result });
      return true;
    } catch (error) {
      // No lifecycle, or one that has ended: the pod holds nothing, and DEL must succeed.
      if (error instanceof WorkflowNotFoundError) return true;
      if (isGrpcServiceError(error) && error.code === 9) return true;
      // Refused by the lifecycle (its validator or handler): final. Anything else failed without the
      // lifecycle's answer (Temporal or a worker away or restarting, the workflow task that carried the update
      // failed): the DEL is kept, to be replayed, since a DEL must never be lost and its replay is idempotent.
      if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
        throw new CniError(CniErrorCode.InvalidEnvironment, error.cause.message);
      }
      if (!isUnreachable(error)) {
        log('warn', 'CNI DEL not answered by the lifecycle', { pod: `${ref.podNamespace}/${ref.podName}`, error: rootMessage(error) });
      }
      return false;
    }
  }

  async function del(body: unknown): Promise<{ spooled: boolean }> {
    const ref = validateAttachment(body);
    if (await release(ref)) return { spooled: false };
    const path = await spoolDel(options.spoolDir, {
      containerID: ref.containerID,
      interface: ref.interface,
      podNamespace: ref.podNamespace,
      podName: ref.podName,
      podUID: ref.podUID,
    });
    log('warn', 'Temporal or a worker did not answer the CNI DEL in time; spooled for replay', { path });
    return { spooled: true };
  }

  async function check(body: unknown): Promise<void> {
    const ref = validateAttachment(body);
    const podName = `${ref.podNamespace}/${ref.podName}`;
    let state;
    try {
      state = await client.withDeadline(Date.now() + options.delTimeoutMs, () =>
        client.workflow.getHandle(podLifecycleWorkflowId(ref.podNamespace, ref.podName)).query(stateQuery),
      );
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) {
        throw new CniError(CniErrorCode.NotAllocated, `Tidepool holds no IP for pod ${podName}`);
      }
      if (isUnreachable(error)) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `Tidepool did not answer CHECK for pod ${podName} within ${options.delTimeoutMs / 1000} s: ` +
            `is Temporal reachable at ${options.temporalAddress} and a tidepool worker polling task queue ${taskQueue}?`,
          rootMessage(error),
        );
      }
      throw error;
    }
    const held = state.interfaces[ref.interface];
    if (state.podUID !== ref.podUID || !held || held.containerID !== ref.containerID || held.detachedAt !== undefined) {
      throw new CniError(CniErrorCode.NotAllocated, `Tidepool holds no IP for container ${ref.containerID} interface ${ref.interface} of pod ${podName}`);
    }
    const expected = (body as Partial<AgentCheckRequest>).ips ?? [];
    const actual = held.ips.map((h) => h.address);
    const missing = expected.filter((address) => !actual.includes(address));
    if (missing.length > 0) {
      throw new CniError(CniErrorCode.NotAllocated, `pod ${podName} ${ref.interface} does not hold ${missing.join(', ')}; it holds ${actual.join(', ')}`);
    }
  }

  /**
   * CNI GC: runs the `runtimeGc` workflow of this network on this node and waits for it within the DEL
   * deadline. Nothing is spooled: the runtime calls GC again, and a GC is idempotent.
   */
  async function gc(body: unknown): Promise<RuntimeGcResult> {
    const request = body as AgentGcRequest;
    const node = request.node ?? options.nodeName;
    const what = `the GC of network ${request.network}`;
    if (!node) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `${what} names no node: set NODE_NAME for the tidepool agent, or ipam.node_name in the network configuration`,
      );
    }
    try {
      return await client.withDeadline(Date.now() + options.delTimeoutMs, () =>
        client.workflow.execute<RuntimeGcWorkflow>('runtimeGc', {
          workflowId: runtimeGcWorkflowId(node, request.network),
          taskQueue,
          args: [{ network: request.network, node, validAttachments: request.validAttachments }],
          staticSummary: `runtime GC of network ${request.network} on node ${node}`,
        }),
      );
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        throw new CniError(CniErrorCode.TryAgainLater, `${what} on node ${node} is still running from an earlier call; call GC again`);
      }
      if (error instanceof WorkflowFailedError || isUnreachable(error)) {
        throw new CniError(
          CniErrorCode.TryAgainLater,
          `Tidepool did not finish ${what} on node ${node} within ${options.delTimeoutMs / 1000} s: ` +
            `is Temporal reachable at ${options.temporalAddress} and a tidepool worker polling task queue ${taskQueue}? GC is safe to call again`,
          rootMessage(error),
        );
      }
      throw error;
    }
  }

  /** CNI STATUS: whether an ADD could be served now, i.e. Temporal answers and a worker polls the task queue. */
  async function status(): Promise<void> {
    const statusTimeoutMs = options.statusTimeoutMs ?? parseDuration(NODE_DEFAULTS.agentStatusTimeout, 'the STATUS deadline');
    let pollers;
    try {
      const queue = await client.withDeadline(Date.now() + statusTimeoutMs, () =>
        client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue } }),
      );
      pollers = queue.pollers ?? [];
    } catch (error) {
      throw new CniError(
        CniErrorCode.PluginNotAvailable,
        `Temporal did not answer within ${statusTimeoutMs / 1000} s at ${options.temporalAddress}: Tidepool cannot allocate IPs`,
        rootMessage(error),
      );
    }
    const now = Date.now();
    if (!pollers.some((poller) => now - timestampMs(poller.lastAccessTime) < POLLER_SEEN_WITHIN_MS)) {
      throw new CniError(
        CniErrorCode.PluginNotAvailable,
        `no tidepool worker polls task queue ${taskQueue} at ${options.temporalAddress}: Tidepool cannot allocate IPs`,
        `Temporal saw no poller on the task queue in the last ${POLLER_SEEN_WITHIN_MS / 1000} s; is the tidepool-worker Deployment running?`,
      );
    }
  }

  /** Replays spooled DELs, oldest first; keeps those Temporal still cannot take. */
  async function replaySpool(): Promise<{ replayed: number; pending: number }> {
    let replayed = 0;
    let pending = 0;
    const spooled = await listSpooledDels(options.spoolDir, (corrupt) =>
      log('error', 'corrupt spooled DEL moved aside', { ...corrupt }),
    );
    for (const { path, request } of spooled) {
      try {
        if (await release(request)) {
          await removeSpooledDel(path);
          replayed++;
        } else {
          pending++;
        }
      } catch (error) {
        log('error', 'spooled DEL rejected; removing it', { path, error: (error as Error).message });
        await removeSpooledDel(path);
      }
    }
    return { replayed, pending };
  }

  return { add, del, check, gc, status, replaySpool };
}

export type Agent = ReturnType<typeof createAgent>;
