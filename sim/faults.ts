// The chaos run's fault plan: which fault, at which moment, for how long; pure and seeded, so that a seed
// repeats the same plan.

export const FAULT_KINDS = ['worker-kill', 'temporal-restart', 'apiserver-restart', 'drop-dels', 'cni-kill', 'node-power', 'postgres-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** The faults that only the real Temporal server has something to inject into: the dev server keeps no PostgreSQL. */
const SERVER_ONLY_FAULTS: readonly FaultKind[] = ['postgres-restart'];

/** Every fault kind a run against this kind of Temporal can inject (`--faults all`). */
export function faultKindsFor(temporal: 'dev' | 'server'): FaultKind[] {
  return FAULT_KINDS.filter((kind) => temporal === 'server' || !SERVER_ONLY_FAULTS.includes(kind));
}

export interface PlannedFault {
  kind: FaultKind;
  /** Milliseconds after the run's start. */
  atMs: number;
  /**
   * How long the fault lasts: the worker's time down before it is started again, the drop or kill window,
   * the node's time powered off. The restarts of Temporal and kube-apiserver take as long as the restart.
   */
  forMs: number;
  /** The node, for node-power. */
  node?: string;
  /** For worker-kill with more than one worker: which one (from 1); the others run on. */
  worker?: number;
}

export interface FaultPlanOptions {
  durationMs: number;
  kinds: readonly FaultKind[];
  /** The mean gap between two faults; every kind gets at least one fault whatever the gap. */
  meanGapMs: number;
  /** No fault starts in the first `quietStartMs` (the churn ramps up) or ends after `durationMs - quietEndMs`. */
  quietStartMs: number;
  quietEndMs: number;
  nodes: readonly string[];
  /** How long a node stays off: long enough that the node controller marks it NotReady. */
  powerOffMs: number;
  /** How long a window of dropped DELs or killed ADDs lasts. */
  windowMs: number;
  /** How many workers run; a worker-kill picks one of them. */
  workers?: number;
}

/** A small seeded generator (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/**
 * Faults at random moments in the run's window, sorted by time: as many as the mean gap allows but at least
 * one of every kind, the kinds dealt in shuffled rounds so that each appears about equally often.
 */
export function planFaults(options: FaultPlanOptions, random: () => number): PlannedFault[] {
  if (options.kinds.length === 0) return [];
  const durationOf = (kind: FaultKind) =>
    kind === 'node-power' ? options.powerOffMs : kind === 'drop-dels' || kind === 'cni-kill' ? options.windowMs : kind === 'worker-kill' ? 1000 + random() * 4000 : 0;
  const longest = Math.max(options.powerOffMs, options.windowMs, 5000);
  const windowStart = options.quietStartMs;
  const windowEnd = options.durationMs - options.quietEndMs - longest;
  if (windowEnd <= windowStart) {
    throw new Error(`a run of ${options.durationMs / 1000} s leaves no time for faults after its quiet start and end; make it longer`);
  }
  const count = Math.max(options.kinds.length, Math.floor((windowEnd - windowStart) / options.meanGapMs));
  const kinds: FaultKind[] = [];
  while (kinds.length < count) kinds.push(...shuffled(options.kinds, random));
  const times = Array.from({ length: count }, () => windowStart + random() * (windowEnd - windowStart)).sort((a, b) => a - b);
  return times.map((atMs, index) => {
    const kind = kinds[index]!;
    const fault: PlannedFault = { kind, atMs: Math.round(atMs), forMs: Math.round(durationOf(kind)) };
    if (kind === 'node-power') fault.node = options.nodes[Math.floor(random() * options.nodes.length)]!;
    if (kind === 'worker-kill' && (options.workers ?? 1) > 1) fault.worker = 1 + Math.floor(random() * options.workers!);
    return fault;
  });
}

/** Parses `--faults all` (every kind this Temporal has) or a comma-separated list of kinds, with a message that names what is unknown. */
export function parseFaultKinds(text: string, temporal: 'dev' | 'server'): FaultKind[] {
  if (text.trim() === 'all') return faultKindsFor(temporal);
  if (text.trim() === 'none') return [];
  const kinds = text.split(',').map((kind) => kind.trim()).filter(Boolean);
  const unknown = kinds.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
  if (unknown.length > 0 || kinds.length === 0) {
    throw new Error(`--faults: ${unknown.join(', ') || '(none)'} is not one of all, none, ${FAULT_KINDS.join(', ')}`);
  }
  const unserved = kinds.filter((kind) => !faultKindsFor(temporal).includes(kind as FaultKind));
  if (unserved.length > 0) throw new Error(`--faults: ${unserved.join(', ')} needs --temporal server (the dev server keeps no PostgreSQL)`);
  return [...new Set(kinds)] as FaultKind[];
}
