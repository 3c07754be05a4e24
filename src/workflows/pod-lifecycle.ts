import { ApplicationFailure, log, patched, proxyLocalActivities, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { FAILED_ADD_WAIT_MS } from '../contract/defaults.ts';
import { ALLOCATION_FAILED, errorCauses, NON_RETRYABLE_FAILURES, POD_GONE_FAILURES, type FailureType } from '../contract/failures.ts';
import type {
  AllocateRequest,
  AllocateResult,
  DelKeepReason,
  InterfaceAllocation,
  LifecycleInput,
  LifecycleSnapshot,
  PodEvent,
  PodIP,
  ReclaimRequest,
  ReleaseRequest,
  ReleaseResult,
  RuntimeGcReleaseRequest,
} from '../contract/lifecycle.ts';
import { releaseReasonText, type ReleaseReason } from '../contract/release-reasons.ts';
import { lifecycleCurrentDetails, shortContainerID } from '../temporal/lifecycle-details.ts';
import { TidepoolIPs, TidepoolNode, TidepoolPod, TidepoolPodUID, TidepoolPools, TidepoolState } from '../temporal/names.ts';

const activities = proxyLocalActivities<Activities>({
  startToCloseTimeout: '20s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: [...NON_RETRYABLE_FAILURES] },
});

/**
 * The first failure in the chain that carries an error type: a local activity fails with the activity's
 * ApplicationFailure itself, a regular one with an ActivityFailure that wraps it.
 */
function rootFailure(error: unknown): { type: string; message: string } {
  for (const current of errorCauses(error)) {
    const type = (current as { type?: unknown }).type;
    if (typeof type === 'string' && type !== '') return { type, message: current.message };
  }
  return { type: ALLOCATION_FAILED, message: (error as Error).message };
}

/** Turns a failed activity into a failure of the update, keeping the activity's error type and message. */
function updateFailure(error: unknown): ApplicationFailure {
  const { type, message } = rootFailure(error);
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** Histories written before a failed ADD kept its lifecycle ended with the failure. */
const KEEP_AFTER_FAILED_ADD = 'keep-lifecycle-after-failed-add';
/**
 * Histories written before it ran an ADD's allocation and PodEndpoint write as two activities, and released a
 * live pod's IPs at its DEL (all but a wanted StatefulSet pod's) in two more. One patch for both: each patch
 * costs a run a marker and a search-attribute upsert.
 */
const ONE_ACTIVITY_PER_CNI_CALL = 'one-activity-per-cni-call';

/**
 * The state of one pod's IP lifecycle and its operations: what the workflow's handlers do, one at a time
 * (src/workflows/pod-ip-lifecycle.ts serialises them). Every change of state is published to the search
 * attributes and the Temporal UI's current details.
 */
export class PodLifecycle {
  readonly snapshot: LifecycleSnapshot;
  /** Whether a handler has run: a lifecycle ends only once it did something and holds no IP. */
  handled: boolean;

  constructor(input: LifecycleInput) {
    this.snapshot = input.snapshot ?? {
      namespace: input.namespace,
      pod: input.pod,
      state: 'Allocating',
      interfaces: {},
      ipsEverHeld: [],
      poolsEverUsed: [],
    };
    this.handled = input.snapshot !== undefined;
  }

  private get podName(): string {
    return `${this.snapshot.namespace}/${this.snapshot.pod}`;
  }

  /** Every IP the lifecycle holds now, with its pool. */
  held(): { ip: string; pool: string }[] {
    return Object.values(this.snapshot.interfaces).flatMap((allocation) => allocation.ips.map((ip) => ({ ip: ip.ip, pool: ip.pool })));
  }

  /** Done: it did something and holds no IP, and is not waiting for the runtime's next ADD after failed ones. */
  finished(): boolean {
    const { retryUntil } = this.snapshot;
    return this.handled && this.held().length === 0 && (retryUntil === undefined || Date.now() >= retryUntil);
  }

  /** The earliest time the loop must wake: a judgement due, or the end of the wait for the next ADD. */
  nextWake(): number | undefined {
    const { checkAt, retryUntil } = this.snapshot;
    if (retryUntil === undefined) return checkAt;
    return checkAt === undefined ? retryUntil : Math.min(checkAt, retryUntil);
  }

  /**
   * The workflow's result once finished: the snapshot, or, when every ADD failed and no other came in time, a
   * failure that says so (the Temporal UI shows the lifecycle Failed, its snapshot in the failure's details).
   */
  close(): LifecycleSnapshot {
    const lifecycle = this.snapshot;
    lifecycle.checkAt = undefined;
    this.describe();
    if (lifecycle.state !== 'Failed' || lifecycle.retryUntil === undefined) return lifecycle;
    throw ApplicationFailure.create({
      type: ALLOCATION_FAILED,
      message: `no ADD of pod ${this.podName} got an IP (${lifecycle.failedAttempts ?? 1} failed): ${lifecycle.lastReason ?? ''}`,
      nonRetryable: true,
      details: [lifecycle],
    });
  }

  /** A failed ADD left the lifecycle holding nothing: wait for the runtime's next ADD, unless the pod is gone. */
  private awaitNextAdd(podUID: string, failure: { type: string; message: string }): void {
    const lifecycle = this.snapshot;
    // A pod re-created under the name starts its own count.
    if (lifecycle.podUID !== podUID) lifecycle.failedAttempts = 0;
    lifecycle.podUID = podUID;
    lifecycle.failedAttempts = (lifecycle.failedAttempts ?? 0) + 1;
    const podGone = POD_GONE_FAILURES.includes(failure.type as FailureType);
    lifecycle.retryUntil = Date.now() + (podGone ? 0 : FAILED_ADD_WAIT_MS);
    lifecycle.lastReason = `${failure.message} (ADD ${lifecycle.failedAttempts} failed${podGone ? '' : `; waits for the next ADD until ${new Date(lifecycle.retryUntil).toISOString()}`})`;
  }

  /** The Temporal UI's current details; metadata, not a command, so it costs no history event. */
  describe(): void {
    setCurrentDetails(lifecycleCurrentDetails(this.snapshot));
  }

  private publish(): void {
    const lifecycle = this.snapshot;
    this.describe();
    upsertSearchAttributes([
      { key: TidepoolPod, value: this.podName },
      { key: TidepoolState, value: lifecycle.state },
      { key: TidepoolIPs, value: lifecycle.ipsEverHeld },
      { key: TidepoolPools, value: lifecycle.poolsEverUsed },
      ...(lifecycle.podUID ? [{ key: TidepoolPodUID, value: lifecycle.podUID }] : []),
      ...(lifecycle.node ? [{ key: TidepoolNode, value: lifecycle.node }] : []),
    ]);
  }

  private remember(ips: readonly { ip: string; pool: string }[]): void {
    for (const { ip, pool } of ips) {
      if (!this.snapshot.ipsEverHeld.includes(ip)) this.snapshot.ipsEverHeld.push(ip);
      if (!this.snapshot.poolsEverUsed.includes(pool)) this.snapshot.poolsEverUsed.push(pool);
    }
  }

  private released(reason: ReleaseReason): void {
    this.snapshot.releaseReason = reason;
    this.snapshot.lastReason = releaseReasonText(reason);
  }

  private releaseIPs(podUID: string, ips: { ip: string; pool: string }[], reason: ReleaseReason, containerID?: string) {
    const { namespace, pod } = this.snapshot;
    return activities.releaseIPs({ namespace, pod, podUID, ...(containerID ? { containerID } : {}), ips, reason });
  }

  /** Releases everything the lifecycle holds for `podUID`, and the pod's PodEndpoint entries. */
  private async releaseAll(podUID: string, reason: ReleaseReason): Promise<string[]> {
    const lifecycle = this.snapshot;
    const ips = this.held();
    if (ips.length === 0) return [];
    const result = await this.releaseIPs(podUID, ips, reason);
    await activities.removePodEndpoint({ namespace: lifecycle.namespace, pod: lifecycle.pod, podUID, interfaces: Object.keys(lifecycle.interfaces) });
    log.info('released IPs', { pod: this.podName, reason, ...result });
    lifecycle.interfaces = {};
    return result.released;
  }

  /** Histories from before attachInterface: the PodEndpoint written in an activity of its own, the IPs given back if it cannot be. */
  private async writeEndpointOrGiveBack(request: AllocateRequest, ips: PodIP[], interfacesBefore: LifecycleSnapshot['interfaces']): Promise<void> {
    const lifecycle = this.snapshot;
    try {
      await activities.writePodEndpoint({
        namespace: lifecycle.namespace,
        pod: lifecycle.pod,
        podUID: request.podUID,
        ...(lifecycle.node ? { node: lifecycle.node } : {}),
        ...(lifecycle.ownerKind ? { ownerKind: lifecycle.ownerKind, ownerName: lifecycle.ownerName } : {}),
        interfaces: lifecycle.interfaces,
      });
    } catch (error) {
      // The pod went away (with its namespace) between the allocation and its record: give the IPs back.
      await this.releaseIPs(request.podUID, ips.map((ip) => ({ ip: ip.ip, pool: ip.pool })), 'EndpointNotWritten', request.containerID);
      lifecycle.interfaces = interfacesBefore;
      if (this.held().length === 0) lifecycle.state = 'Failed';
      lifecycle.lastReason = rootFailure(error).message;
      this.publish();
      throw updateFailure(error);
    }
  }

  /** CNI ADD of one interface. A pod re-created under the same name first has the old pod's IPs released, or taken over (StatefulSet). */
  async allocate(request: AllocateRequest): Promise<AllocateResult> {
    const lifecycle = this.snapshot;
    let adoptFromUID: string | undefined;
    if (lifecycle.podUID !== undefined && lifecycle.podUID !== request.podUID && this.held().length > 0) {
      if (lifecycle.ownerKind === 'StatefulSet') {
        adoptFromUID = lifecycle.podUID;
      } else {
        log.info('the pod was re-created under its name', { pod: this.podName, oldUID: lifecycle.podUID, newUID: request.podUID });
        await this.releaseAll(lifecycle.podUID, 'PodRecreated');
        this.released('PodRecreated');
      }
    }
    const current = lifecycle.interfaces[request.interface];
    if (!adoptFromUID && lifecycle.podUID === request.podUID && current && current.containerID === request.containerID && current.detachedAt === undefined) {
      return { ips: current.ips };
    }
    const interfacesBefore = lifecycle.interfaces;
    const otherInterfaces = Object.fromEntries(Object.entries(interfacesBefore).filter(([name]) => name !== request.interface));
    const allocation = {
      namespace: lifecycle.namespace,
      pod: lifecycle.pod,
      podUID: request.podUID,
      containerID: request.containerID,
      interface: request.interface,
      defaultPools: request.defaultPools,
      ...(request.network ? { network: request.network } : {}),
      ...(request.node ? { node: request.node } : {}),
      ...(adoptFromUID ? { adoptFromUID } : {}),
    };
    const attachInOneActivity = patched(ONE_ACTIVITY_PER_CNI_CALL);
    let result;
    try {
      result = attachInOneActivity
        ? await activities.attachInterface({ ...allocation, otherInterfaces, endpointExists: Object.keys(interfacesBefore).length > 0 })
        : await activities.allocateIPs(allocation);
    } catch (error) {
      if (this.held().length === 0) {
        lifecycle.state = 'Failed';
        lifecycle.lastReason = rootFailure(error).message;
        if (patched(KEEP_AFTER_FAILED_ADD)) this.awaitNextAdd(request.podUID, rootFailure(error));
        this.publish();
      }
      throw updateFailure(error);
    }
    if (lifecycle.podUID !== request.podUID || lifecycle.allocatedAt === undefined) lifecycle.allocatedAt = Date.now();
    lifecycle.podUID = request.podUID;
    lifecycle.node = result.node ?? lifecycle.node;
    lifecycle.ownerKind = result.ownerKind;
    lifecycle.ownerName = result.ownerName;
    lifecycle.interfaces = {
      ...otherInterfaces,
      [request.interface]: { containerID: request.containerID, ips: result.ips, ...(request.network ? { network: request.network } : {}), allocatedAt: Date.now() },
    };
    if (!attachInOneActivity) await this.writeEndpointOrGiveBack(request, result.ips, interfacesBefore);
    // The next sandbox of a live pod got the IPs its DEL kept: the search attributes already say all of it.
    const kept =
      lifecycle.state === 'Allocated' &&
      current?.detachedAt !== undefined &&
      result.ips.length === current.ips.length &&
      result.ips.every((ip: PodIP) => current.ips.some((held) => held.ip === ip.ip && held.pool === ip.pool));
    this.remember(result.ips);
    lifecycle.state = 'Allocated';
    lifecycle.retryUntil = undefined;
    const afterFailures = lifecycle.failedAttempts ? ` after ${lifecycle.failedAttempts} failed ADD${lifecycle.failedAttempts > 1 ? 's' : ''}` : '';
    lifecycle.lastReason = adoptFromUID
      ? `kept the IPs of StatefulSet pod UID ${adoptFromUID}`
      : kept
        ? `kept the IPs of the pod's earlier sandbox (container ${shortContainerID(current.containerID)})`
        : `allocated from ${result.source}${afterFailures}`;
    if (kept) this.describe();
    else this.publish();
    return { ips: result.ips };
  }

  /**
   * A DEL kept the interface's IPs: the container no longer holds them, the pod does. A live pod's stay
   * Allocated (its IPs, pools and state are what the search attributes already say, so only the UI's details
   * change); a StatefulSet pod's are Retained for the re-created pod.
   */
  private retain(current: InterfaceAllocation, containerID: string, reason: DelKeepReason, detach: boolean): ReleaseResult {
    const lifecycle = this.snapshot;
    if (detach) current.detachedAt = Date.now();
    if (reason === 'PodLive') {
      lifecycle.lastReason = `pod ${this.podName} lives on: the DEL of container ${shortContainerID(containerID)} keeps its IPs for the pod's next sandbox`;
      this.describe();
    } else {
      lifecycle.state = 'Retained';
      lifecycle.lastReason = `StatefulSet ${lifecycle.ownerName} still wants ${lifecycle.pod}: its IPs are kept for the re-created pod`;
      this.publish();
    }
    return { released: [], retained: current.ips.map((ip) => ip.ip), note: lifecycle.lastReason };
  }

  /**
   * CNI DEL of one interface: released, or kept for the pod's next sandbox while the pod lives on (or its
   * StatefulSet still wants the pod's ordinal).
   */
  async release(request: ReleaseRequest): Promise<ReleaseResult> {
    const lifecycle = this.snapshot;
    const current = lifecycle.interfaces[request.interface];
    if (!current) return { released: [], retained: [], note: `no IP is held for interface ${request.interface}` };
    if (request.podUID !== lifecycle.podUID) {
      return { released: [], retained: [], note: `the IPs belong to pod UID ${lifecycle.podUID}, not ${request.podUID}` };
    }
    if (current.containerID !== request.containerID) {
      return { released: [], retained: [], note: `container ${current.containerID} holds interface ${request.interface}, not ${request.containerID}` };
    }
    const ips = current.ips.map((ip) => ({ ip: ip.ip, pool: ip.pool }));
    if (patched(ONE_ACTIVITY_PER_CNI_CALL)) {
      const outcome = await activities.detachInterface({
        namespace: lifecycle.namespace,
        pod: lifecycle.pod,
        podUID: request.podUID,
        containerID: request.containerID,
        interface: request.interface,
        ips,
        ...(lifecycle.ownerKind ? { ownerKind: lifecycle.ownerKind, ownerName: lifecycle.ownerName } : {}),
      });
      if (outcome.action === 'keep') return this.retain(current, request.containerID, outcome.reason, true);
      return this.releasedByDel(request.interface, outcome.released);
    }
    if (lifecycle.ownerKind === 'StatefulSet' && lifecycle.ownerName) {
      const wanted = await activities.statefulSetWantsPod({ namespace: lifecycle.namespace, pod: lifecycle.pod, statefulSet: lifecycle.ownerName });
      if (wanted) return this.retain(current, request.containerID, 'StatefulSetOrdinalWanted', false);
    }
    const result = await this.releaseIPs(request.podUID, ips, 'CNIDel', request.containerID);
    await activities.removePodEndpoint({ namespace: lifecycle.namespace, pod: lifecycle.pod, podUID: request.podUID, interfaces: [request.interface] });
    return this.releasedByDel(request.interface, result.released);
  }

  private releasedByDel(iface: string, released: string[]): ReleaseResult {
    const lifecycle = this.snapshot;
    delete lifecycle.interfaces[iface];
    if (Object.keys(lifecycle.interfaces).length === 0) lifecycle.state = 'Released';
    this.released('CNIDel');
    this.publish();
    return { released, retained: [] };
  }

  /**
   * The runtime's GC: the runtime no longer lists this attachment. As a DEL would, it releases the
   * attachment's records (compare-and-delete on IP, pod UID and container) and keeps a StatefulSet pod's for
   * its re-created pod. It runs after any ADD this lifecycle is handling, and leaves alone what an ADD gave
   * the container after `allocatedBefore`: the GC's plan was made before that ADD.
   */
  async releaseForRuntimeGc(request: RuntimeGcReleaseRequest): Promise<ReleaseResult> {
    const lifecycle = this.snapshot;
    const current = lifecycle.interfaces[request.interface];
    const held = current !== undefined && lifecycle.podUID === request.podUID && current.containerID === request.containerID ? current : undefined;
    if (held && (held.allocatedAt ?? 0) > request.allocatedBefore) {
      return { released: [], retained: [], note: `an ADD gave container ${request.containerID} its IPs after the GC read the pools` };
    }
    if (held && lifecycle.ownerKind === 'StatefulSet' && lifecycle.ownerName) {
      if (await activities.statefulSetWantsPod({ namespace: lifecycle.namespace, pod: lifecycle.pod, statefulSet: lifecycle.ownerName })) {
        return { released: [], retained: held.ips.map((ip) => ip.ip), note: `StatefulSet ${lifecycle.ownerName} still wants ${lifecycle.pod}` };
      }
    }
    const heldIPs = held ? held.ips.map((ip) => ({ ip: ip.ip, pool: ip.pool })) : [];
    const ips = [...heldIPs, ...request.ips.filter((named) => !heldIPs.some((h) => h.ip === named.ip && h.pool === named.pool))];
    const result = await this.releaseIPs(request.podUID, ips, 'RuntimeGC', request.containerID);
    // An interface this lifecycle holds for another container or pod UID keeps its PodEndpoint entry.
    if (held || current === undefined) {
      await activities.removePodEndpoint({ namespace: lifecycle.namespace, pod: lifecycle.pod, podUID: request.podUID, interfaces: [request.interface] });
    }
    if (!held && result.released.length === 0) {
      return { released: [], retained: [], note: `no record of container ${request.containerID} on interface ${request.interface} is left to release` };
    }
    if (held) delete lifecycle.interfaces[request.interface];
    lifecycle.podUID ??= request.podUID;
    this.remember(ips);
    if (this.held().length === 0) lifecycle.state = 'Released';
    this.released('RuntimeGC');
    lifecycle.lastReason =
      `${releaseReasonText('RuntimeGC')}: container ${shortContainerID(request.containerID)} on interface ${request.interface} ` +
      `of network ${request.network} on node ${request.node} was not among the runtime's ${request.validAttachments} valid attachments`;
    log.info('released IPs for the runtime GC', { pod: this.podName, network: request.network, validAttachments: request.validAttachments, ...result });
    this.publish();
    return { released: result.released, retained: [] };
  }

  /** Releases records of `request.podUID` (those named, and those this lifecycle holds for that pod). */
  async reclaim(request: ReclaimRequest): Promise<void> {
    if (request.reason === 'StaleRecord') return this.reclaimStale(request);
    const lifecycle = this.snapshot;
    const mine = lifecycle.podUID === request.podUID ? this.held() : [];
    const ips = [...mine, ...request.ips.filter((named) => !mine.some((m) => m.ip === named.ip && m.pool === named.pool))];
    if (ips.length === 0) return;
    const result = await this.releaseIPs(request.podUID, ips, request.reason);
    await activities.removePodEndpoint({ namespace: lifecycle.namespace, pod: lifecycle.pod, podUID: request.podUID });
    log.info('reclaimed IPs', { pod: this.podName, reason: request.reason, ...result });
    if (lifecycle.podUID === request.podUID || lifecycle.podUID === undefined) {
      lifecycle.podUID = request.podUID;
      lifecycle.interfaces = {};
      lifecycle.checkAt = undefined;
    }
    this.remember(ips);
    lifecycle.state = 'Reclaimed';
    this.released(request.reason);
    this.publish();
  }

  /**
   * Releases the named records of the live pod that nothing it uses names, never one of the IPs this lifecycle
   * gave it; the activity judges each again from a live look before its compare-and-delete.
   */
  private async reclaimStale(request: ReclaimRequest): Promise<void> {
    const lifecycle = this.snapshot;
    if (lifecycle.podUID !== undefined && lifecycle.podUID !== request.podUID) return;
    const held = this.held();
    const ips = request.ips.filter((named) => !held.some((h) => h.ip === named.ip && h.pool === named.pool));
    if (ips.length === 0) return;
    const result = await activities.releaseStaleRecords({ namespace: lifecycle.namespace, pod: lifecycle.pod, podUID: request.podUID, ips });
    log.info('stale records', { pod: this.podName, ...result });
    const released = ips.filter((named) => result.released.includes(named.ip));
    if (released.length === 0) return;
    this.remember(released);
    if (held.length === 0) lifecycle.state = 'Reclaimed';
    this.released('StaleRecord');
    lifecycle.lastReason = `released ${result.released.join(', ')}: ${releaseReasonText('StaleRecord')}`;
    this.publish();
  }

  /** From the controller: judge the pod again at the event's time (the earliest one asked for wins). */
  onPodEvent(event: PodEvent): void {
    const lifecycle = this.snapshot;
    if (event.podUID !== lifecycle.podUID || this.held().length === 0) return;
    lifecycle.checkAt = Math.min(lifecycle.checkAt ?? Number.POSITIVE_INFINITY, event.checkAt);
    this.describe();
  }

  /** The durable timer fired: judge the pod live, then reclaim, wait again, or keep. */
  async judge(): Promise<void> {
    const lifecycle = this.snapshot;
    lifecycle.checkAt = undefined;
    if (lifecycle.podUID === undefined || this.held().length === 0) return;
    const decision = await activities.judgePod({
      namespace: lifecycle.namespace,
      pod: lifecycle.pod,
      podUID: lifecycle.podUID,
      ...(lifecycle.ownerKind ? { ownerKind: lifecycle.ownerKind, ownerName: lifecycle.ownerName } : {}),
      ...(lifecycle.allocatedAt !== undefined ? { allocatedAt: lifecycle.allocatedAt } : {}),
    });
    if (decision.action === 'reclaim') await this.reclaim({ podUID: lifecycle.podUID, reason: decision.reason, ips: [] });
    else if (decision.action === 'wait') lifecycle.checkAt = decision.until;
    else log.info('kept IPs', { pod: this.podName, reason: decision.reason });
    this.describe();
  }
}
