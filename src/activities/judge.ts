import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { JudgePodInput, StatefulSetOrdinalInput } from '../contract/lifecycle.ts';
import { nodeFacts, podFacts, statefulSetFacts, statefulSetOwner } from '../gc/facts.ts';
import { delVerdict, podLive, verdict, wantsOrdinal, type DelVerdict, type GcConfig, type Verdict } from '../gc/verdict.ts';
import { kubeGetOptional } from '../k8s/errors.ts';

/** judgePod, judgeDel and statefulSetWantsPod: the live reads behind a lifecycle's own verdicts. */
export function createJudgeActivities({ kubeConfig, gc }: { kubeConfig: KubeConfig; gc: GcConfig }) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const readStatefulSet = (namespace: string, name: string) =>
    kubeGetOptional(`get StatefulSet ${namespace}/${name}`, () => apps.readNamespacedStatefulSet({ namespace, name }));
  return {
    /** The reclaim verdict for a lifecycle's IPs, from the pod, its node and its StatefulSet read live. */
    async judgePod(input: JudgePodInput): Promise<Verdict> {
      const podName = `${input.namespace}/${input.pod}`;
      const pod = await kubeGetOptional(`get pod ${podName}`, () => core.readNamespacedPod({ namespace: input.namespace, name: input.pod }));
      const nodeName = pod?.spec?.nodeName;
      const node = nodeName ? await kubeGetOptional(`get node ${nodeName}`, () => core.readNode({ name: nodeName })) : undefined;
      const setName = statefulSetOwner(pod) ?? (input.ownerKind === 'StatefulSet' ? input.ownerName : undefined);
      const set = setName ? await readStatefulSet(input.namespace, setName) : undefined;
      return verdict({
        record: { ip: '', pool: '', pod: podName, podUID: input.podUID, ...(input.allocatedAt ? { allocatedAt: input.allocatedAt } : {}) },
        pod: pod ? podFacts(pod) : undefined,
        node: node ? nodeFacts(node) : undefined,
        statefulSet: setName ? statefulSetFacts(setName, set) : undefined,
        confirmedLive: true,
        config: gc,
        now: Date.now(),
      });
    },

    /** Whether a CNI DEL keeps the interface's IPs for the pod's next sandbox, from the pod (and its StatefulSet) read live. */
    async judgeDel(input: JudgePodInput): Promise<DelVerdict> {
      const podName = `${input.namespace}/${input.pod}`;
      const pod = await kubeGetOptional(`get pod ${podName}`, () => core.readNamespacedPod({ namespace: input.namespace, name: input.pod }));
      const facts = pod ? podFacts(pod) : undefined;
      const setName = podLive(facts, input.podUID) ? undefined : (statefulSetOwner(pod) ?? (input.ownerKind === 'StatefulSet' ? input.ownerName : undefined));
      const set = setName ? await readStatefulSet(input.namespace, setName) : undefined;
      return delVerdict({ pod: podName, podUID: input.podUID, podFacts: facts, ...(setName ? { statefulSet: statefulSetFacts(setName, set) } : {}) });
    },

    /** Whether the StatefulSet still wants the pod's ordinal, so the pod keeps its IP across re-creation. */
    async statefulSetWantsPod(input: StatefulSetOrdinalInput): Promise<boolean> {
      const set = await readStatefulSet(input.namespace, input.statefulSet);
      return wantsOrdinal(statefulSetFacts(input.statefulSet, set), input.pod);
    },
  };
}
