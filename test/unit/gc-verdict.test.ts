import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  delVerdict,
  recordVerdict,
  statefulSetOrdinal,
  verdict,
  type EndpointFacts,
  type GcConfig,
  type PodFacts,
  type RecordVerdictInput,
  type StatefulSetFacts,
  type Verdict,
  type VerdictInput,
} from '../../src/gc/verdict.ts';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const MIN = 60_000;
const config: GcConfig = {
  enabled: true,
  reclaimTerminatingOnReadyNode: true,
  reclaimTerminatingOnNotReadyNode: true,
  additionalGraceDelayMs: 0,
  minRecordAgeMs: MIN,
  reclaimRunningWithoutPodIPs: false,
};
const record = { ip: '10.6.0.5', pool: 'pool-a', pod: 'ns/web-1', podUID: 'uid-1', allocatedAt: NOW - 10 * MIN };
const running: PodFacts = { uid: 'uid-1', phase: 'Running', nodeName: 'n1', podIPs: ['10.6.0.5'], terminationGracePeriodSeconds: 30 };
const ready = { name: 'n1', ready: true };
const notReady = { name: 'n1', ready: false };
const set = (replicas: number, more: Partial<StatefulSetFacts> = {}): StatefulSetFacts => ({
  name: 'web', exists: true, deleting: false, replicas, ordinalStart: 0, ...more,
});

function decide(overrides: Partial<VerdictInput>): Verdict {
  return verdict({ record, pod: running, node: ready, statefulSet: undefined, confirmedLive: false, config, now: NOW, ...overrides });
}

describe('verdict', () => {
  it.each<[string, Partial<VerdictInput>, Verdict]>([
    ['GC switched off keeps everything', { config: { ...config, enabled: false }, pod: undefined }, { action: 'keep', reason: 'GCDisabled' }],
    ['a running pod with its IP is kept', {}, { action: 'keep', reason: 'PodActive' }],
    ['a pending pod is kept (it may be mid-allocation)', { pod: { ...running, phase: 'Pending', podIPs: [] } }, { action: 'keep', reason: 'PodPending' }],
    ['(d) a record whose pod is gone is reclaimed', { pod: undefined }, { action: 'reclaim', reason: 'PodNotFound' }],
    ['(d) a record naming another UID is reclaimed', { pod: { ...running, uid: 'uid-2' } }, { action: 'reclaim', reason: 'PodReplaced' }],
    ['(d) a hand-written record without a time whose pod is gone is reclaimed', { record: { ...record, allocatedAt: undefined }, pod: undefined }, { action: 'reclaim', reason: 'PodNotFound' }],
    ['a young record whose pod is not in the list waits for the minimum age', { record: { ...record, allocatedAt: NOW - 5000 }, pod: undefined }, { action: 'wait', until: NOW - 5000 + MIN, reason: 'RecordTooYoung' }],
    ['a young record is reclaimed when a live GET confirms the pod is gone', { record: { ...record, allocatedAt: NOW - 5000 }, pod: undefined, confirmedLive: true }, { action: 'reclaim', reason: 'PodNotFound' }],
    ['a young record with a replaced pod waits unless confirmed', { record: { ...record, allocatedAt: NOW - 5000 }, pod: { ...running, uid: 'uid-2' } }, { action: 'wait', until: NOW - 5000 + MIN, reason: 'RecordTooYoung' }],
    ['(b) a terminating pod waits until its deletionTimestamp, which already includes its grace',
      { pod: { ...running, deletionTimestamp: NOW + 20_000, deletionGracePeriodSeconds: 30 }, node: notReady },
      { action: 'wait', until: NOW + 20_000, reason: 'WithinGracePeriod' }],
    ['(b) the grace is not counted twice: past its deletionTimestamp the pod is reclaimed',
      { pod: { ...running, deletionTimestamp: NOW - 1, deletionGracePeriodSeconds: 30 }, node: notReady },
      { action: 'reclaim', reason: 'TerminatingOnNotReadyNode' }],
    ['(b) only the additional delay follows the deletionTimestamp',
      { pod: { ...running, deletionTimestamp: NOW - 10_000, deletionGracePeriodSeconds: 30 }, node: notReady, config: { ...config, additionalGraceDelayMs: 60_000 } },
      { action: 'wait', until: NOW + 50_000, reason: 'WithinGracePeriod' }],
    ['(b) past grace on a NotReady node: reclaimed',
      { pod: { ...running, deletionTimestamp: NOW - 40_000, deletionGracePeriodSeconds: 30 }, node: notReady },
      { action: 'reclaim', reason: 'TerminatingOnNotReadyNode' }],
    ['(b) past grace on a deleted node: reclaimed as NotReady',
      { pod: { ...running, deletionTimestamp: NOW - 40_000, deletionGracePeriodSeconds: 30 }, node: undefined },
      { action: 'reclaim', reason: 'TerminatingOnNotReadyNode' }],
    ['(b) the NotReady switch off keeps it',
      { pod: { ...running, deletionTimestamp: NOW - 40_000, deletionGracePeriodSeconds: 30 }, node: notReady, config: { ...config, reclaimTerminatingOnNotReadyNode: false } },
      { action: 'keep', reason: 'TerminatingOnNotReadyNodeSwitchOff' }],
    ['past grace on a Ready node: reclaimed', { pod: { ...running, deletionTimestamp: NOW - 40_000, deletionGracePeriodSeconds: 30 } }, { action: 'reclaim', reason: 'TerminatingOnReadyNode' }],
    ['the Ready switch off keeps it',
      { pod: { ...running, deletionTimestamp: NOW - 40_000, deletionGracePeriodSeconds: 30 }, config: { ...config, reclaimTerminatingOnReadyNode: false } },
      { action: 'keep', reason: 'TerminatingOnReadyNodeSwitchOff' }],
    ['(c) a Succeeded pod is reclaimed after finishedAt + termination grace', { pod: { ...running, phase: 'Succeeded', finishedAt: NOW - 31_000 } }, { action: 'reclaim', reason: 'PodSucceeded' }],
    ['(c) a Failed pod waits out its termination grace', { pod: { ...running, phase: 'Failed', finishedAt: NOW - 10_000 } }, { action: 'wait', until: NOW + 20_000, reason: 'WithinGracePeriod' }],
    ['(c) a Failed pod past grace is reclaimed', { pod: { ...running, phase: 'Failed', finishedAt: NOW - 31_000 }, node: notReady }, { action: 'reclaim', reason: 'PodFailed' }],
    ['a StatefulSet pod that is gone is kept while its ordinal is wanted', { pod: undefined, statefulSet: set(3) }, { action: 'keep', reason: 'StatefulSetOrdinalWanted' }],
    ['a StatefulSet pod that is gone is reclaimed after a scale-down', { pod: undefined, statefulSet: set(1) }, { action: 'reclaim', reason: 'StatefulSetScaledDown' }],
    ['a StatefulSet pod that is gone is reclaimed when the StatefulSet is deleted', { pod: undefined, statefulSet: set(3, { exists: false }) }, { action: 'reclaim', reason: 'StatefulSetDeleted' }],
    ['a StatefulSet pod that is gone is reclaimed while its StatefulSet is being deleted', { pod: undefined, statefulSet: set(3, { deleting: true }) }, { action: 'reclaim', reason: 'StatefulSetDeleted' }],
    ['ordinals.start shifts the wanted ordinals', { pod: undefined, statefulSet: set(2, { ordinalStart: 1 }) }, { action: 'keep', reason: 'StatefulSetOrdinalWanted' }],
    ['a re-created StatefulSet pod without IPs keeps the old record for itself', { pod: { ...running, uid: 'uid-2', podIPs: [] }, statefulSet: set(3) }, { action: 'keep', reason: 'StatefulSetOrdinalWanted' }],
    ['a re-created StatefulSet pod that has IPs of its own frees the old record', { pod: { ...running, uid: 'uid-2', podIPs: ['10.6.0.9'] }, statefulSet: set(3) }, { action: 'reclaim', reason: 'PodReplaced' }],
    ['a terminating StatefulSet pod whose ordinal is wanted is kept (it is being re-created)',
      { pod: { ...running, deletionTimestamp: NOW - 400_000 }, node: notReady, statefulSet: set(3) },
      { action: 'keep', reason: 'StatefulSetOrdinalWanted' }],
    ['a running pod without podIPs is kept by default', { pod: { ...running, podIPs: [] } }, { action: 'keep', reason: 'PodActive' }],
    ['a running pod without podIPs is reclaimed with the switch on', { pod: { ...running, podIPs: [] }, config: { ...config, reclaimRunningWithoutPodIPs: true } }, { action: 'reclaim', reason: 'RunningWithoutPodIPs' }],
    // The peers' failure cases (reference/peer-ipams.md):
    ['Calico #5044, #12257: a healthy pod whose record looks stale from old lists is kept (a live pod with its UID)', { pod: running, record: { ...record, allocatedAt: NOW - 30 * MIN } }, { action: 'keep', reason: 'PodActive' }],
    ['Calico #12257: a young record missing from a stale pod list is not reclaimed unconfirmed', { record: { ...record, allocatedAt: NOW - 1000 }, pod: undefined }, { action: 'wait', until: NOW - 1000 + MIN, reason: 'RecordTooYoung' }],
    ['Whereabouts #176: a StatefulSet podRef reused by the re-created pod keeps its record', { pod: { ...running, uid: 'uid-2', podIPs: [] }, statefulSet: set(2) }, { action: 'keep', reason: 'StatefulSetOrdinalWanted' }],
    ['Whereabouts #546: a pod deleted while the IPAM was down is reclaimed by the next look', { pod: undefined }, { action: 'reclaim', reason: 'PodNotFound' }],
    ['Kube-OVN: an Evicted (Failed) pod is dead once its grace has passed', { pod: { ...running, phase: 'Failed', podIPs: [], finishedAt: NOW - 60_000 } }, { action: 'reclaim', reason: 'PodFailed' }],
  ])('%s', (_name, overrides, expected) => {
    expect(decide(overrides)).toEqual(expected);
  });

  it('never reclaims a live pod that holds its record, a wanted StatefulSet ordinal, or a young unconfirmed record', () => {
    const pod = fc.option(
      fc.record({
        uid: fc.constantFrom('uid-1', 'uid-2'),
        phase: fc.constantFrom('Pending', 'Running', 'Succeeded', 'Failed', 'Unknown') as fc.Arbitrary<PodFacts['phase']>,
        podIPs: fc.constantFrom<string[]>([], ['10.6.0.5']),
        deletionTimestamp: fc.option(fc.integer({ min: NOW - 600_000, max: NOW }), { nil: undefined }),
        deletionGracePeriodSeconds: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
        finishedAt: fc.option(fc.integer({ min: NOW - 600_000, max: NOW }), { nil: undefined }),
      }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(
        pod,
        fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }),
        fc.integer({ min: 0, max: 20 * MIN }),
        fc.boolean(),
        fc.boolean(),
        (p, replicas, age, confirmed, nodeReady) => {
          const input: VerdictInput = {
            record: { ...record, allocatedAt: NOW - age },
            pod: p,
            node: { name: 'n1', ready: nodeReady },
            statefulSet: replicas === undefined ? undefined : set(replicas),
            confirmedLive: confirmed,
            config,
            now: NOW,
          };
          const result = verdict(input);
          if (result.action !== 'reclaim') return;
          const live = p && p.uid === record.podUID && !p.deletionTimestamp && (p.phase === 'Running' || p.phase === 'Pending');
          expect(live).toBeFalsy();
          const wantedOrdinal = replicas !== undefined && 1 < replicas;
          if (wantedOrdinal) expect(p && p.uid !== record.podUID && p.podIPs.length > 0).toBe(true);
          if (age < MIN && !confirmed) expect(p && p.uid === record.podUID).toBe(true);
        },
      ),
    );
  });
});

describe('recordVerdict: stale records of a live pod', () => {
  const stale = { ...record, ip: '10.6.0.9' };
  const own: EndpointFacts = { podUID: 'uid-1', ips: [{ ip: '10.6.0.5', pool: 'pool-a' }] };
  const judge = (overrides: Partial<RecordVerdictInput>): Verdict =>
    recordVerdict({ record: stale, pod: running, node: ready, statefulSet: undefined, endpoint: own, confirmedLive: false, config, now: NOW, ...overrides });

  it.each<[string, Partial<RecordVerdictInput>, Verdict]>([
    ['Spiderpool: a second record of a live pod that its PodEndpoint does not name is reclaimed', {}, { action: 'reclaim', reason: 'StaleRecord' }],
    ['the record the PodEndpoint names is the pod’s', { record }, { action: 'keep', reason: 'PodActive' }],
    ['race: a sandbox re-created by the runtime took the record over (new container) before its PodEndpoint says so: kept',
      { record: { ...record, allocatedAt: NOW - 30 * MIN } }, { action: 'keep', reason: 'PodActive' }],
    ['race: an ADD in flight wrote its record and not yet its PodEndpoint: waits for the minimum age',
      { record: { ...stale, allocatedAt: NOW - 2000 } }, { action: 'wait', until: NOW - 2000 + MIN, reason: 'RecordTooYoung' }],
    ['race: an ADD in flight is not hurried by a live confirmation', { record: { ...stale, allocatedAt: NOW - 2000 }, confirmedLive: true },
      { action: 'wait', until: NOW - 2000 + MIN, reason: 'RecordTooYoung' }],
    ['a record whose IP is in status.podIPs is in use', { pod: { ...running, podIPs: ['10.6.0.5', '10.6.0.9'] } }, { action: 'keep', reason: 'PodActive' }],
    ['a record of the same IP in another pool than the PodEndpoint names is stale',
      { record: { ...record, pool: 'pool-b' }, pod: { ...running, podIPs: [] } }, { action: 'reclaim', reason: 'StaleRecord' }],
    ['a live pod without a PodEndpoint: an old record outside status.podIPs is stale', { endpoint: undefined }, { action: 'reclaim', reason: 'StaleRecord' }],
    ['another pod’s PodEndpoint under the name (an old UID) does not name the record', { endpoint: { ...own, podUID: 'uid-0', ips: [{ ip: '10.6.0.9', pool: 'pool-a' }] } },
      { action: 'reclaim', reason: 'StaleRecord' }],
    ['a hand-written record without a time is judged at once', { record: { ...stale, allocatedAt: undefined } }, { action: 'reclaim', reason: 'StaleRecord' }],
    ['a terminating pod’s record is the pod verdict’s', { pod: { ...running, deletionTimestamp: NOW + 10_000 } }, { action: 'wait', until: NOW + 10_000, reason: 'WithinGracePeriod' }],
    ['a finished pod’s record is the pod verdict’s', { pod: { ...running, phase: 'Succeeded', finishedAt: NOW - 10_000 } }, { action: 'wait', until: NOW + 20_000, reason: 'WithinGracePeriod' }],
    ['a record of an older UID is the pod verdict’s (PodReplaced)', { record: { ...stale, podUID: 'uid-0' } }, { action: 'reclaim', reason: 'PodReplaced' }],
    ['GC switched off keeps it', { config: { ...config, enabled: false } }, { action: 'keep', reason: 'GCDisabled' }],
  ])('%s', (_name, overrides, expected) => {
    expect(judge(overrides)).toEqual(expected);
  });

  it('never judges stale a record that a live pod uses: its PodEndpoint names it, status.podIPs lists it, or an ADD may still be writing it', () => {
    const ips = ['10.6.0.1', '10.6.0.2', '10.6.0.3'];
    const pools = ['pool-a', 'pool-b'];
    const entry = fc.record({ ip: fc.constantFrom(...ips), pool: fc.constantFrom(...pools) });
    fc.assert(
      fc.property(
        entry,
        fc.integer({ min: 0, max: 3 * MIN }),
        fc.subarray(ips),
        fc.option(fc.record({ podUID: fc.constantFrom('uid-1', 'uid-0'), ips: fc.array(entry, { maxLength: 3 }) }), { nil: undefined }),
        fc.constantFrom<PodFacts['phase']>('Pending', 'Running'),
        (named, age, podIPs, endpoint, phase) => {
          const input: RecordVerdictInput = {
            record: { ...record, ...named, allocatedAt: NOW - age },
            pod: { ...running, phase, podIPs },
            node: ready,
            statefulSet: undefined,
            endpoint,
            confirmedLive: true,
            config,
            now: NOW,
          };
          const result = recordVerdict(input);
          const usedByEndpoint = endpoint?.podUID === 'uid-1' && endpoint.ips.some((e) => e.ip === named.ip && e.pool === named.pool);
          const inUse = usedByEndpoint || podIPs.includes(named.ip) || age < MIN;
          expect(result.action === 'reclaim' && result.reason === 'StaleRecord').toBe(!inUse);
        },
      ),
    );
  });
});

describe('statefulSetOrdinal', () => {
  it.each([
    ['web-0', 'web', 0],
    ['web-12', 'web', 12],
    ['web-01', 'web', undefined],
    ['web-x', 'web', undefined],
    ['web-api-3', 'web', undefined],
    ['web-api-3', 'web-api', 3],
  ])('%s of %s is %s', (pod, setName, ordinal) => {
    expect(statefulSetOrdinal(pod, setName)).toBe(ordinal);
  });
});

describe('delVerdict: what a CNI DEL does with the IPs of the sandbox it tears down', () => {
  const del = (podFacts: PodFacts | undefined, statefulSet?: StatefulSetFacts) => delVerdict({ pod: 'ns/web-1', podUID: 'uid-1', podFacts, statefulSet });
  it.each<[string, PodFacts | undefined, StatefulSetFacts | undefined, string]>([
    ['a Running pod keeps them for its next sandbox', running, undefined, 'keep PodLive'],
    ['a Pending pod (a sandbox that failed to start) keeps them', { ...running, phase: 'Pending', podIPs: [] }, undefined, 'keep PodLive'],
    ['a pod of unknown phase keeps them', { ...running, phase: 'Unknown' }, undefined, 'keep PodLive'],
    ['a pod being deleted releases', { ...running, deletionTimestamp: NOW }, undefined, 'release'],
    ['a Succeeded pod releases', { ...running, phase: 'Succeeded' }, undefined, 'release'],
    ['a Failed pod releases', { ...running, phase: 'Failed' }, undefined, 'release'],
    ['a pod that is gone releases', undefined, undefined, 'release'],
    ['another pod under the name releases the DEL\'s UID', { ...running, uid: 'uid-2' }, undefined, 'release'],
    ['a deleted StatefulSet pod whose ordinal is wanted keeps them', { ...running, deletionTimestamp: NOW }, set(3), 'keep StatefulSetOrdinalWanted'],
    ['a gone StatefulSet pod whose ordinal is wanted keeps them', undefined, set(3), 'keep StatefulSetOrdinalWanted'],
    ['a StatefulSet pod scaled away releases', { ...running, deletionTimestamp: NOW }, set(1), 'release'],
    ['a StatefulSet pod of a set being deleted releases', undefined, set(3, { deleting: true }), 'release'],
  ])('%s', (_, podFacts, statefulSet, expected) => {
    const decision = del(podFacts, statefulSet);
    expect(decision.action === 'keep' ? `keep ${decision.reason}` : decision.action).toBe(expected);
  });

  it('keeps exactly when the pod of the UID lives on or its StatefulSet wants the ordinal', () => {
    const phase = fc.constantFrom<PodFacts['phase']>('Pending', 'Running', 'Succeeded', 'Failed', 'Unknown');
    const pod = fc.option(fc.record({ uid: fc.constantFrom('uid-1', 'uid-2'), phase, deleting: fc.boolean() }), { nil: undefined });
    const statefulSet = fc.option(fc.record({ replicas: fc.nat(3), deleting: fc.boolean(), exists: fc.boolean() }), { nil: undefined });
    fc.assert(
      fc.property(pod, statefulSet, (p, s) => {
        const podFacts = p && { ...running, uid: p.uid, phase: p.phase, ...(p.deleting ? { deletionTimestamp: NOW } : {}) };
        const setFacts = s && set(s.replicas, { deleting: s.deleting, exists: s.exists });
        const live = p !== undefined && p.uid === 'uid-1' && !p.deleting && p.phase !== 'Succeeded' && p.phase !== 'Failed';
        const wanted = s !== undefined && s.exists && !s.deleting && s.replicas > 1;
        expect(del(podFacts, setFacts).action).toBe(live || wanted ? 'keep' : 'release');
      }),
    );
  });
});
