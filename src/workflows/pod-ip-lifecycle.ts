import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  log,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { NON_RETRYABLE_FAILURES } from '../contract/failures.ts';
import { interfaceNameProblem } from '../cni/interface-name.ts';
import type { PodIP } from '../contract/lifecycle.ts';
import { TidepoolIPs, TidepoolNode, TidepoolPod, TidepoolPodUID, TidepoolPools, TidepoolState } from '../temporal/names.ts';
import {
  allocateUpdate,
  podEventSignal,
  reclaimSignal,
  releaseUpdate,
  stateQuery,
  type AllocateRequest,
  type AllocateResult,
  type LifecycleInput,
  type LifecycleSnapshot,
  type PodIPLifecycleWorkflow,
  type ReclaimRequest,
  type ReleaseRequest,
  type ReleaseResult,
} from '../contract/lifecycle.ts';
import { lifecycleCurrentDetails } from '../temporal/lifecycle-details.ts';

const activities = proxyLocalActivities<Activities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES] },
});

function validateRequest(request: { podUID?: unknown; containerID?: unknown; interface?: unknown }): void {
  const problems: string[] = [];
  if (typeof request.podUID !== 'string' || request.podUID === '') problems.push('podUID is empty');
  if (typeof request.containerID !== 'string' || request.containerID === '') problems.push('containerID is empty');
  const interfaceProblem = typeof request.interface === 'string' ? interfaceNameProblem(request.interface) : 'is not a string';
  if (interfaceProblem) problems.push(`interface ${JSON.stringify(request.interface)} ${interfaceProblem}`);
  if (problems.length > 0) throw new Error(`invalid request: ${problems.join('; ')}`);
}

interface TypedFailure {
  type?: string | null;
  message: string;
  cause?: unknown;
}

/**
 * The first failure in the chain that carries an error type: a local activity fails with the activity's
 * ApplicationFailure itself, a regular one with an ActivityFailure that wraps it.
 */
function rootFailure(error: unknown): { type: string; message: string } {
  for (let current = error as TypedFailure | undefined; current; current = current.cause as TypedFailure | undefined) {
    if (typeof current.type === 'string' && current.type !== '') return { type: current.type, message: current.message };
  }
  return { type: 'AllocationFailed', message: (error as Error).message };
}

/** Turns a failed activity into a failure of the update, keeping the activity's error type and message. */
function updateFailure(error: unknown): ApplicationFailure {
  const { type, message } = rootFailure(error);
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** Runs handlers one at a time, in arrival order, so that no two of them interleave their activities. */
function serialized() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * One pod's IP lifecycle (workflow ID pod-ip/<namespace>/<pod>): started by update-with-start from a CNI
 * ADD, it allocates per interface, answers repeated ADDs with the same IPs, releases on CNI DEL, and ends
 * once the pod holds no IP. A pod re-created under the same name with a new UID first gets the old pod's IPs
 * released (stateless) or taken over (a StatefulSet pod whose ordinal is still wanted). Every decision is in
 * this workflow's history; the search attributes tell its state.
 */
export async function podIPLifecycle(input: LifecycleInput): Promise<LifecycleSnapshot> {
  const s: LifecycleSnapshot = input.snapshot ?? {
    namespace: input.namespace,
    pod: input.pod,
    state: 'Allocating',
    interfaces: {},
    ipsEverHeld: [],
    poolsEverUsed: [],
  };
  const podName = `${s.namespace}/${s.pod}`;
  const exclusive = serialized();
  let handled = input.snapshot !== undefined;

  const held = (): { ip: string; pool: string }[] =>
    Object.values(s.interfaces).flatMap((a) => a.ips.map((h) => ({ ip: h.ip, pool: h.pool })));

  /** The Temporal UI's current details; metadata, not a command, so it costs no history event. */
  const describe = (): void => setCurrentDetails(lifecycleCurrentDetails(s));

  function publish(): void {
    describe();
    upsertSearchAttributes([
      { key: TidepoolPod, value: podName },
      { key: TidepoolState, value: s.state },
      { key: TidepoolIPs, value: s.ipsEverHeld },
      { key: TidepoolPools, value: s.poolsEverUsed },
      ...(s.podUID ? [{ key: TidepoolPodUID, value: s.podUID }] : []),
      ...(s.node ? [{ key: TidepoolNode, value: s.node }] : []),
    ]);
  }

  function remember(ips: PodIP[]): void {
    for (const h of ips) {
      if (!s.ipsEverHeld.includes(h.ip)) s.ipsEverHeld.push(h.ip);
      if (!s.poolsEverUsed.includes(h.pool)) s.poolsEverUsed.push(h.pool);
    }
  }

  async function releaseAll(podUID: string, reason: string): Promise<string[]> {
    const ips = held();
    if (ips.length === 0) return [];
    const result = await activities.releaseIPs({ namespace: s.namespace, pod: s.pod, podUID, ips, reason });
    await activities.removePodEndpoint({ namespace: s.namespace, pod: s.pod, podUID, interfaces: Object.keys(s.interfaces) });
    log.info('released IPs', { pod: podName, reason, ...result });
    s.interfaces = {};
    return result.released;
  }

  async function allocate(request: AllocateRequest): Promise<AllocateResult> {
    let adoptFromUID: string | undefined;
    if (s.podUID !== undefined && s.podUID !== request.podUID && held().length > 0) {
      if (s.ownerKind === 'StatefulSet') {
        adoptFromUID = s.podUID;
      } else {
        await releaseAll(s.podUID, `pod ${podName} was re-created with UID ${request.podUID}`);
        s.lastReason = 'PodReplaced';
      }
    }
    const current = s.interfaces[request.interface];
    if (!adoptFromUID && s.podUID === request.podUID && current && current.containerID === request.containerID) {
      return { ips: current.ips };
    }
    const previousInterfaces = adoptFromUID ? s.interfaces : {};
    let result;
    try {
      result = await activities.allocateIPs({
        namespace: s.namespace,
        pod: s.pod,
        podUID: request.podUID,
        containerID: request.containerID,
        interface: request.interface,
        netconfDefaults: request.netconfDefaults,
        ...(adoptFromUID ? { adoptFromUID } : {}),
      });
    } catch (error) {
      if (held().length === 0) {
        s.state = 'Failed';
        s.lastReason = rootFailure(error).message;
        publish();
      }
      throw updateFailure(error);
    }
    if (s.podUID !== request.podUID || s.allocatedAt === undefined) s.allocatedAt = Date.now();
    s.podUID = request.podUID;
    s.node = result.node ?? s.node;
    s.ownerKind = result.ownerKind;
    s.ownerName = result.ownerName;
    const interfacesBefore = s.interfaces;
    s.interfaces = { ...(adoptFromUID ? Object.fromEntries(Object.entries(previousInterfaces).filter(([i]) => i !== request.interface)) : s.interfaces) };
    s.interfaces[request.interface] = { containerID: request.containerID, ips: result.ips };
    try {
      await activities.writePodEndpoint({
        namespace: s.namespace,
        pod: s.pod,
        podUID: request.podUID,
        ...(s.node ? { node: s.node } : {}),
        ...(s.ownerKind ? { ownerKind: s.ownerKind, ownerName: s.ownerName } : {}),
        interfaces: s.interfaces,
      });
    } catch (error) {
      // The pod went away (with its namespace) between the allocation and its record: give the IPs back.
      await activities.releaseIPs({
        namespace: s.namespace,
        pod: s.pod,
        podUID: request.podUID,
        containerID: request.containerID,
        ips: result.ips.map((h) => ({ ip: h.ip, pool: h.pool })),
        reason: 'PodEndpoint not written',
      });
      s.interfaces = interfacesBefore;
      if (held().length === 0) s.state = 'Failed';
      s.lastReason = rootFailure(error).message;
      publish();
      throw updateFailure(error);
    }
    remember(result.ips);
    s.state = 'Allocated';
    s.lastReason = adoptFromUID ? `kept the IPs of StatefulSet pod UID ${adoptFromUID}` : `allocated from ${result.source}`;
    publish();
    return { ips: result.ips };
  }

  async function release(request: ReleaseRequest): Promise<ReleaseResult> {
    const current = s.interfaces[request.interface];
    if (!current) return { released: [], retained: [], note: `no IP is held for interface ${request.interface}` };
    if (request.podUID !== s.podUID) {
      return { released: [], retained: [], note: `the IPs belong to pod UID ${s.podUID}, not ${request.podUID}` };
    }
    if (current.containerID !== request.containerID) {
      return { released: [], retained: [], note: `container ${current.containerID} holds interface ${request.interface}, not ${request.containerID}` };
    }
    if (s.ownerKind === 'StatefulSet' && s.ownerName) {
      const wanted = await activities.statefulSetWantsPod({ namespace: s.namespace, pod: s.pod, statefulSet: s.ownerName });
      if (wanted) {
        s.state = 'Retained';
        s.lastReason = `StatefulSet ${s.ownerName} still wants ${s.pod}: its IPs are kept for the re-created pod`;
        publish();
        return { released: [], retained: current.ips.map((h) => h.ip), note: s.lastReason };
      }
    }
    const ips = current.ips.map((h) => ({ ip: h.ip, pool: h.pool }));
    const result = await activities.releaseIPs({
      namespace: s.namespace,
      pod: s.pod,
      podUID: request.podUID,
      containerID: request.containerID,
      ips,
      reason: 'CNI DEL',
    });
    await activities.removePodEndpoint({ namespace: s.namespace, pod: s.pod, podUID: request.podUID, interfaces: [request.interface] });
    delete s.interfaces[request.interface];
    if (Object.keys(s.interfaces).length === 0) s.state = 'Released';
    s.lastReason = 'CNI DEL';
    publish();
    return { released: result.released, retained: [] };
  }

  /** Releases records of `request.podUID` (those named, and those this lifecycle holds for that pod). */
  async function reclaim(request: ReclaimRequest): Promise<void> {
    const mine = s.podUID === request.podUID ? held() : [];
    const ips = [...mine, ...request.ips.filter((r) => !mine.some((m) => m.ip === r.ip && m.pool === r.pool))];
    if (ips.length === 0) return;
    const result = await activities.releaseIPs({ namespace: s.namespace, pod: s.pod, podUID: request.podUID, ips, reason: request.reason });
    await activities.removePodEndpoint({ namespace: s.namespace, pod: s.pod, podUID: request.podUID });
    log.info('reclaimed IPs', { pod: podName, reason: request.reason, ...result });
    if (s.podUID === request.podUID || s.podUID === undefined) {
      s.podUID = request.podUID;
      s.interfaces = {};
      s.checkAt = undefined;
    }
    for (const { ip, pool } of ips) {
      if (!s.ipsEverHeld.includes(ip)) s.ipsEverHeld.push(ip);
      if (!s.poolsEverUsed.includes(pool)) s.poolsEverUsed.push(pool);
    }
    s.state = 'Reclaimed';
    s.lastReason = request.reason;
    publish();
  }

  /** The durable timer fired: judge the pod live, then reclaim, wait again, or keep. */
  async function judge(): Promise<void> {
    s.checkAt = undefined;
    if (s.podUID === undefined || held().length === 0) return;
    const decision = await activities.judgePod({
      namespace: s.namespace,
      pod: s.pod,
      podUID: s.podUID,
      ...(s.ownerKind ? { ownerKind: s.ownerKind, ownerName: s.ownerName } : {}),
      ...(s.allocatedAt !== undefined ? { allocatedAt: s.allocatedAt } : {}),
    });
    if (decision.action === 'reclaim') await reclaim({ podUID: s.podUID, reason: decision.reason, ips: [] });
    else if (decision.action === 'wait') s.checkAt = decision.until;
    else log.info('kept IPs', { pod: podName, reason: decision.reason });
    describe();
  }

  setHandler(
    allocateUpdate,
    (request) =>
      exclusive(async () => {
        try {
          return await allocate(request);
        } finally {
          handled = true;
        }
      }),
    { validator: validateRequest, description: 'CNI ADD: allocate the IPs of one interface' },
  );
  setHandler(
    releaseUpdate,
    (request) =>
      exclusive(async () => {
        try {
          return await release(request);
        } finally {
          handled = true;
        }
      }),
    { validator: validateRequest, description: 'CNI DEL: release the IPs of one interface' },
  );
  setHandler(stateQuery, () => s);
  setHandler(podEventSignal, (event) => {
    if (event.podUID !== s.podUID || held().length === 0) return;
    s.checkAt = Math.min(s.checkAt ?? Number.POSITIVE_INFINITY, event.checkAt);
    describe();
  });
  setHandler(reclaimSignal, (request) =>
    exclusive(async () => {
      try {
        await reclaim(request);
      } finally {
        handled = true;
      }
    }),
  );

  describe();
  const finished = () => handled && held().length === 0;
  const checkDue = () => s.checkAt !== undefined && Date.now() >= s.checkAt;
  for (;;) {
    // A signal that moves checkAt wakes the loop too, so that the timer is armed for the new time.
    const armed = s.checkAt;
    const wake = () =>
      (finished() || workflowInfo().continueAsNewSuggested || checkDue() || s.checkAt !== armed) && allHandlersFinished();
    if (s.checkAt === undefined) await condition(wake);
    else await condition(wake, Math.max(1, s.checkAt - Date.now()), { summary: 'judge the pod again' });
    if (checkDue()) {
      await exclusive(judge);
      continue;
    }
    if (finished()) return s;
    if (workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof podIPLifecycle>({ namespace: s.namespace, pod: s.pod, snapshot: s });
    }
  }
}

podIPLifecycle satisfies PodIPLifecycleWorkflow;
