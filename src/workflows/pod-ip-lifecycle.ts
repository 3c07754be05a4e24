import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { attachmentRequestProblem } from '../contract/attachment.ts';
import {
  allocateUpdate,
  podEventSignal,
  reclaimSignal,
  releaseUpdate,
  runtimeGcReleaseUpdate,
  stateQuery,
  type LifecycleInput,
  type LifecycleSnapshot,
  type PodIPLifecycleWorkflow,
} from '../contract/lifecycle.ts';
import { PodLifecycle } from './pod-lifecycle.ts';

function validateRequest(request: { podUID?: unknown; containerID?: unknown; interface?: unknown }): void {
  const problem = attachmentRequestProblem(request);
  if (problem) throw new Error(`invalid request: ${problem}`);
}

/**
 * One pod's IP lifecycle (workflow ID pod-ip/<namespace>/<pod>): started by update-with-start from a CNI
 * ADD, it allocates per interface, answers repeated ADDs with the same IPs, releases on CNI DEL, and ends
 * once the pod holds no IP. A failed ADD keeps it waiting for the runtime's next ADD of the pod (up to
 * FAILED_ADD_WAIT_MS), so every attempt is in one history; if none succeeds it ends as a failed workflow. A pod re-created under the same name with a new UID first gets the old pod's IPs
 * released (stateless) or taken over (a StatefulSet pod whose ordinal is still wanted). Every decision is in
 * this workflow's history; the search attributes tell its state. The state and its operations are
 * PodLifecycle's (./pod-lifecycle.ts); this function registers the handlers and runs the loop.
 */
export async function podIPLifecycle(input: LifecycleInput): Promise<LifecycleSnapshot> {
  const lifecycle = new PodLifecycle(input);
  let tail: Promise<unknown> = Promise.resolve();
  /** One operation at a time, in arrival order, so that no two interleave their activities. */
  const serialized = <T>(operation: () => Promise<T>): Promise<T> => {
    const result = tail.then(operation, operation);
    tail = result.catch(() => undefined);
    return result;
  };
  /** Every handler goes through here. */
  const handle = <T>(operation: () => Promise<T>): Promise<T> =>
    serialized(async () => {
      try {
        return await operation();
      } finally {
        lifecycle.handled = true;
      }
    });

  setHandler(allocateUpdate, (request) => handle(() => lifecycle.allocate(request)), {
    validator: validateRequest,
    description: 'CNI ADD: allocate the IPs of one interface',
  });
  setHandler(releaseUpdate, (request) => handle(() => lifecycle.release(request)), {
    validator: validateRequest,
    description: 'CNI DEL: release the IPs of one interface',
  });
  setHandler(runtimeGcReleaseUpdate, (request) => handle(() => lifecycle.releaseForRuntimeGc(request)), {
    validator: validateRequest,
    description: "CNI GC: release an attachment the runtime's list of valid attachments leaves out",
  });
  setHandler(reclaimSignal, (request) => handle(() => lifecycle.reclaim(request)));
  setHandler(podEventSignal, (event) => lifecycle.onPodEvent(event));
  setHandler(stateQuery, () => lifecycle.snapshot);

  lifecycle.describe();
  const { snapshot } = lifecycle;
  const checkDue = () => snapshot.checkAt !== undefined && Date.now() >= snapshot.checkAt;
  for (;;) {
    // A signal that moves checkAt (or an ADD that ends the wait for one) wakes the loop too, so that the timer
    // is armed for the new time.
    const armed = lifecycle.nextWake();
    const wake = () =>
      (lifecycle.finished() || workflowInfo().continueAsNewSuggested || checkDue() || lifecycle.nextWake() !== armed) && allHandlersFinished();
    if (armed === undefined) await condition(wake);
    else await condition(wake, Math.max(1, armed - Date.now()), { summary: armed === snapshot.checkAt ? 'judge the pod again' : 'wait for the next ADD' });
    if (checkDue()) {
      await serialized(() => lifecycle.judge());
      continue;
    }
    if (lifecycle.finished()) return lifecycle.close();
    if (workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof podIPLifecycle>({ namespace: snapshot.namespace, pod: snapshot.pod, snapshot });
    }
  }
}

podIPLifecycle satisfies PodIPLifecycleWorkflow;
