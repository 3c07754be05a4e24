import { describe, expect, it } from 'vitest';
import { FAULT_KINDS, parseFaultKinds, planFaults, seededRandom, type FaultPlanOptions } from '../../sim/faults.ts';
import {
  finalViolations,
  ipsHeldTwice,
  SampledInvariants,
  type EndpointFact,
  type LifecycleFact,
  type PodFact,
  type PoolCountFact,
  type RecordFact,
} from '../../sim/invariants.ts';

interface FinalFacts {
  pods: PodFact[];
  records: RecordFact[];
  pools: PoolCountFact[];
  endpoints: EndpointFact[];
  lifecycles: LifecycleFact[];
}

const T0 = Date.parse('2026-11-23T00:00:00Z');
const pod = (name: string, uid: string, ips: string[], more: Partial<PodFact> = {}): PodFact => ({ pod: `ns/${name}`, uid, gone: false, ready: true, ips, ...more });
const record = (ip: string, name: string, uid: string): RecordFact => ({ pool: 'p', ip, pod: `ns/${name}`, podUID: uid });

/** One healthy end state: two pods, each with its record, endpoint and lifecycle. */
function healthy(): FinalFacts {
  return {
    pods: [pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.2']), pod('old', 'uo', [], { gone: true, ready: false })],
    records: [record('10.0.0.1', 'a', 'ua'), record('10.0.0.2', 'b', 'ub')],
    pools: [{ pool: 'p', allocatedIPCount: 2, records: 2 }],
    endpoints: [
      { pod: 'ns/a', podUID: 'ua', ips: ['10.0.0.1'] },
      { pod: 'ns/b', podUID: 'ub', ips: ['10.0.0.2'] },
    ],
    lifecycles: [
      { workflowId: 'pod-ip/ns/a', pod: 'ns/a', podUID: 'ua', state: 'Allocated', ips: ['10.0.0.1'] },
      { workflowId: 'pod-ip/ns/b', pod: 'ns/b', podUID: 'ub', state: 'Allocated', ips: ['10.0.0.9', '10.0.0.2'] },
    ],
  };
}

describe('ipsHeldTwice', () => {
  it('flags an IP that two Ready pods use, and names both', () => {
    const violations = ipsHeldTwice([pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.1'])], T0);
    expect(violations).toEqual([{ invariant: 'ip-held-twice', at: T0, detail: '10.0.0.1 is used by ns/a (uid ua) and ns/b (uid ub)' }]);
  });

  it('does not count a pod that is gone or not Ready: its status may still show an IP it gave back', () => {
    expect(ipsHeldTwice([pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.1'], { gone: true })], T0)).toEqual([]);
    expect(ipsHeldTwice([pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.1'], { ready: false })], T0)).toEqual([]);
  });
});

describe('SampledInvariants', () => {
  it('reports a record whose pod is gone only once it outlives the reclaim window, and only once', () => {
    const invariants = new SampledInvariants(60_000);
    const pods = [pod('a', 'ua', [], { gone: true, ready: false })];
    const records = [record('10.0.0.1', 'a', 'ua')];
    expect(invariants.observe(records, pods, T0)).toEqual([]);
    expect(invariants.observe(records, pods, T0 + 60_000)).toEqual([]);
    const late = invariants.observe(records, pods, T0 + 61_000);
    expect(late.map((v) => v.invariant)).toEqual(['ip-leaked']);
    expect(late[0]!.detail).toContain('10.0.0.1 in pool p for ns/a (uid ua) is still allocated 61 s');
    expect(invariants.observe(records, pods, T0 + 90_000)).toEqual([]);
  });

  it('restarts the clock for a record that was reclaimed and comes back for another pod', () => {
    const invariants = new SampledInvariants(60_000);
    const gone = [pod('a', 'ua', [], { gone: true, ready: false })];
    expect(invariants.observe([record('10.0.0.1', 'a', 'ua')], gone, T0)).toEqual([]);
    expect(invariants.observe([], gone, T0 + 30_000)).toEqual([]);
    expect(invariants.observe([record('10.0.0.1', 'a', 'ua')], gone, T0 + 70_000)).toEqual([]);
  });

  it('counts a record of a pod absent from the pod list as leaked', () => {
    const invariants = new SampledInvariants(10_000);
    invariants.observe([record('10.0.0.1', 'a', 'ua')], [], T0);
    expect(invariants.observe([record('10.0.0.1', 'a', 'ua')], [], T0 + 11_000).map((v) => v.invariant)).toEqual(['ip-leaked']);
  });

  it('reports an IP a Ready pod uses without a record for it when two samples in a row show it', () => {
    const invariants = new SampledInvariants(60_000);
    const pods = [pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.2'])];
    const records = [record('10.0.0.1', 'x', 'ux'), record('10.0.0.2', 'b', 'ub')];
    expect(invariants.observe(records, pods, T0)).toEqual([]);
    const second = invariants.observe(records, pods, T0 + 5000);
    expect(second).toEqual([
      {
        invariant: 'ip-used-without-record',
        at: T0 + 5000,
        detail: 'ns/a (uid ua) is Ready with 10.0.0.1, which is recorded for ns/x (uid ux), in two samples in a row',
      },
    ]);
  });

  it('forgives a single sample where the record lagged the pod (an allocation between the two reads)', () => {
    const invariants = new SampledInvariants(60_000);
    const pods = [pod('a', 'ua', ['10.0.0.1'])];
    expect(invariants.observe([], pods, T0)).toEqual([]);
    expect(invariants.observe([record('10.0.0.1', 'a', 'ua')], pods, T0 + 5000)).toEqual([]);
    expect(invariants.observe([], pods, T0 + 10_000)).toEqual([]);
  });

  it('reports an IP held twice at once, in the first sample that shows it', () => {
    const invariants = new SampledInvariants(60_000);
    const pods = [pod('a', 'ua', ['10.0.0.1']), pod('b', 'ub', ['10.0.0.1'])];
    expect(invariants.observe([record('10.0.0.1', 'a', 'ua')], pods, T0).map((v) => v.invariant)).toEqual(['ip-held-twice']);
  });
});

describe('finalViolations', () => {
  it('passes an end state where pods, pools, endpoints and lifecycles agree', () => {
    expect(finalViolations(healthy(), T0)).toEqual([]);
  });

  it.each<[string, (facts: FinalFacts) => void, string, string]>([
    ['a pod not Running', (f) => void (f.pods[0] = { ...f.pods[0]!, ready: false }), 'pod-not-running', 'ns/a (uid ua) is not Running and Ready with an IP'],
    ['a record for a pod that is gone', (f) => void f.records.push(record('10.0.0.7', 'old', 'uo')), 'ip-leaked', '10.0.0.7 in pool p for ns/old (uid uo): its pod is gone'],
    ['a second record for a live pod', (f) => void f.records.push(record('10.0.0.8', 'a', 'ua')), 'ip-leaked', '10.0.0.8 in pool p for ns/a (uid ua): the pod uses 10.0.0.1, not this IP'],
    ['an IP in use with no record', (f) => void f.records.splice(1, 1), 'ip-used-without-record', 'ns/b (uid ub) uses 10.0.0.2, which no pool records'],
    ['a wrong pool count', (f) => void (f.pools[0] = { ...f.pools[0]!, allocatedIPCount: 3 }), 'pool-count', 'pool p counts 3 allocated IPs but records 2'],
    ['a missing endpoint', (f) => void f.endpoints.splice(0, 1), 'endpoint', 'ns/a has no PodEndpoint'],
    ['an endpoint with other IPs', (f) => void (f.endpoints[0] = { ...f.endpoints[0]!, ips: ['10.0.0.5'] }), 'endpoint', 'PodEndpoint ns/a says uid ua with 10.0.0.5; the pod is uid ua with 10.0.0.1'],
    ['an endpoint left for a gone pod', (f) => void f.endpoints.push({ pod: 'ns/old', podUID: 'uo', ips: [] }), 'endpoint', 'PodEndpoint ns/old (uid uo) is left for a pod that is gone'],
    ['a live pod without a lifecycle', (f) => void f.lifecycles.splice(0, 1), 'lifecycle', 'ns/a has 0 open lifecycles (none), not one'],
    [
      'a lifecycle in the wrong state',
      (f) => void (f.lifecycles[0] = { ...f.lifecycles[0]!, state: 'Released' }),
      'lifecycle',
      'pod-ip/ns/a says state Released, uid ua, IPs 10.0.0.1; the pod is uid ua with 10.0.0.1',
    ],
    [
      'a lifecycle open for a gone pod',
      (f) => void f.lifecycles.push({ workflowId: 'pod-ip/ns/old', pod: 'ns/old', podUID: 'uo', state: 'Allocated', ips: ['10.0.0.3'] }),
      'lifecycle',
      'pod-ip/ns/old (state Allocated, uid uo) is still open for a pod that is gone',
    ],
  ])('flags %s', (_name, spoil, invariant, detail) => {
    const facts = healthy();
    spoil(facts);
    expect(finalViolations(facts, T0)).toEqual([{ invariant, at: T0, detail }]);
  });
});

describe('planFaults', () => {
  const options: FaultPlanOptions = {
    durationMs: 20 * 60_000,
    kinds: FAULT_KINDS,
    meanGapMs: 60_000,
    quietStartMs: 30_000,
    quietEndMs: 30_000,
    nodes: ['n0', 'n1'],
    powerOffMs: 40_000,
    windowMs: 45_000,
  };

  it('is the same plan for the same seed, and another for another seed', () => {
    expect(planFaults(options, seededRandom(7))).toEqual(planFaults(options, seededRandom(7)));
    expect(planFaults(options, seededRandom(7))).not.toEqual(planFaults(options, seededRandom(8)));
  });

  it('has every kind, in time order, all within the window and over before the quiet end', () => {
    const plan = planFaults(options, seededRandom(1));
    expect(new Set(plan.map((fault) => fault.kind))).toEqual(new Set(FAULT_KINDS));
    expect(plan.length).toBe(Math.floor((20 * 60_000 - 60_000 - 45_000) / 60_000));
    expect(plan.map((fault) => fault.atMs)).toEqual([...plan.map((fault) => fault.atMs)].sort((a, b) => a - b));
    for (const fault of plan) {
      expect(fault.atMs).toBeGreaterThanOrEqual(30_000);
      expect(fault.atMs + fault.forMs).toBeLessThanOrEqual(20 * 60_000 - 30_000);
      if (fault.kind === 'node-power') expect(['n0', 'n1']).toContain(fault.node);
    }
  });

  it('kills one worker of several, chosen by the seed, and names none with one worker', () => {
    const kills = (workers?: number) => planFaults({ ...options, ...(workers ? { workers } : {}) }, seededRandom(5)).filter((fault) => fault.kind === 'worker-kill');
    expect(kills().every((fault) => fault.worker === undefined)).toBe(true);
    const chosen = kills(2).map((fault) => fault.worker);
    expect(chosen.every((worker) => worker === 1 || worker === 2)).toBe(true);
    expect(new Set(planFaults({ ...options, workers: 2, meanGapMs: 20_000 }, seededRandom(5)).filter((f) => f.kind === 'worker-kill').map((f) => f.worker))).toEqual(new Set([1, 2]));
  });

  it('fits one of every kind into a short run, and refuses a run too short for any', () => {
    const short = planFaults({ ...options, durationMs: 150_000, meanGapMs: 60_000 }, seededRandom(3));
    expect(short.map((fault) => fault.kind).sort()).toEqual([...FAULT_KINDS].sort());
    expect(() => planFaults({ ...options, durationMs: 90_000 }, seededRandom(3))).toThrow(/no time for faults/);
  });
});

describe('parseFaultKinds', () => {
  it('takes all, none or a list, and names an unknown kind', () => {
    expect(parseFaultKinds('all', 'server')).toEqual([...FAULT_KINDS]);
    expect(parseFaultKinds('none', 'server')).toEqual([]);
    expect(parseFaultKinds('cni-kill, drop-dels,cni-kill', 'dev')).toEqual(['cni-kill', 'drop-dels']);
    expect(() => parseFaultKinds('worker-kill,disk-full', 'dev')).toThrow('--faults: disk-full is not one of');
  });

  it('gives the dev server every kind but a PostgreSQL restart, and refuses one asked for by name', () => {
    expect(parseFaultKinds('all', 'dev')).toEqual(FAULT_KINDS.filter((kind) => kind !== 'postgres-restart'));
    expect(() => parseFaultKinds('worker-kill,postgres-restart', 'dev')).toThrow('--faults: postgres-restart needs --temporal server');
    expect(parseFaultKinds('postgres-restart', 'server')).toEqual(['postgres-restart']);
  });
});
