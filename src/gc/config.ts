import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseDuration } from '../config.ts';
import type { GcConfig } from './verdict.ts';

export interface ReclaimSettings {
  gc: GcConfig;
  /**
   * A label selector on namespaces: the controller and the sweep reclaim only the records of pods in matching
   * namespaces ('' for all). Two Tidepool installations in one cluster, or a test suite beside a running one,
   * then never reclaim each other's records.
   */
  namespaceSelector: string;
  /** How often the tidepool-gc Schedule runs a sweep. */
  sweepIntervalMs: number;
  /** How long a released IP waits before it is handed out again. */
  reuseCooldownMs: number;
  /** After a pool's status write, the next waits this many times that write's duration (PoolWriter's writeSpacing). */
  poolWriteSpacing: number;
}

export const RECLAIM_DEFAULTS: ReclaimSettings = {
  gc: {
    enabled: true,
    reclaimTerminatingOnReadyNode: true,
    reclaimTerminatingOnNotReadyNode: true,
    additionalGraceDelayMs: 5_000,
    minRecordAgeMs: 60_000,
    reclaimRunningWithoutPodIPs: false,
  },
  namespaceSelector: '',
  sweepIntervalMs: 5 * 60_000,
  reuseCooldownMs: 0,
  poolWriteSpacing: 2,
};

type Kind = 'boolean' | 'duration' | 'number' | 'string';

/** Every setting: its key in the config file (under `gc:` unless noted), its environment variable, its type. */
const SETTINGS: { key: string; env: string; kind: Kind; set: (s: ReclaimSettings, v: boolean | number | string) => void }[] = [
  { key: 'gc.enabled', env: 'TIDEPOOL_GC_ENABLED', kind: 'boolean', set: (s, v) => void (s.gc.enabled = v as boolean) },
  {
    key: 'gc.reclaimTerminatingOnReadyNode',
    env: 'TIDEPOOL_GC_TERMINATING_ON_READY_NODE',
    kind: 'boolean',
    set: (s, v) => void (s.gc.reclaimTerminatingOnReadyNode = v as boolean),
  },
  {
    key: 'gc.reclaimTerminatingOnNotReadyNode',
    env: 'TIDEPOOL_GC_TERMINATING_ON_NOT_READY_NODE',
    kind: 'boolean',
    set: (s, v) => void (s.gc.reclaimTerminatingOnNotReadyNode = v as boolean),
  },
  {
    key: 'gc.additionalGraceDelay',
    env: 'TIDEPOOL_GC_ADDITIONAL_GRACE_DELAY',
    kind: 'duration',
    set: (s, v) => void (s.gc.additionalGraceDelayMs = v as number),
  },
  { key: 'gc.minRecordAge', env: 'TIDEPOOL_GC_MIN_RECORD_AGE', kind: 'duration', set: (s, v) => void (s.gc.minRecordAgeMs = v as number) },
  {
    key: 'gc.reclaimRunningWithoutPodIPs',
    env: 'TIDEPOOL_GC_RUNNING_WITHOUT_POD_IPS',
    kind: 'boolean',
    set: (s, v) => void (s.gc.reclaimRunningWithoutPodIPs = v as boolean),
  },
  {
    key: 'gc.namespaceSelector',
    env: 'TIDEPOOL_GC_NAMESPACE_SELECTOR',
    kind: 'string',
    set: (s, v) => void (s.namespaceSelector = v as string),
  },
  { key: 'gc.sweepInterval', env: 'TIDEPOOL_GC_SWEEP_INTERVAL', kind: 'duration', set: (s, v) => void (s.sweepIntervalMs = v as number) },
  { key: 'allocation.reuseCooldown', env: 'TIDEPOOL_REUSE_COOLDOWN', kind: 'duration', set: (s, v) => void (s.reuseCooldownMs = v as number) },
  {
    key: 'allocation.poolWriteSpacing',
    env: 'TIDEPOOL_POOL_WRITE_SPACING',
    kind: 'number',
    set: (s, v) => void (s.poolWriteSpacing = v as number),
  },
];

function convert(kind: Kind, value: unknown, where: string): boolean | number | string {
  if (kind === 'string') {
    if (typeof value === 'string') return value;
    throw new Error(`${where} must be a string, not ${JSON.stringify(value)}`);
  }
  if (kind === 'boolean') {
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new Error(`${where} must be true or false, not ${JSON.stringify(value)}`);
  }
  if (kind === 'number') {
    const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof number === 'number' && Number.isFinite(number) && number >= 0) return number;
    throw new Error(`${where} must be a number of 0 or more, not ${JSON.stringify(value)}`);
  }
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
  if (typeof value === 'string') return parseDuration(value, where);
  throw new Error(`${where} must be a duration such as 30s or 5m, not ${JSON.stringify(value)}`);
}

/**
 * The reclaim and reuse settings: defaults, then the config file's values, then environment variables.
 * Unknown keys in the file and malformed values are errors that name the key.
 */
export function resolveReclaimSettings(file: unknown, env: Readonly<Record<string, string | undefined>>, source = 'config file'): ReclaimSettings {
  const settings: ReclaimSettings = structuredClone(RECLAIM_DEFAULTS);
  if (file !== undefined && file !== null) {
    if (typeof file !== 'object' || Array.isArray(file)) throw new Error(`${source} must be a mapping with gc: and allocation: sections`);
    const known = new Set(SETTINGS.map((s) => s.key));
    for (const [section, values] of Object.entries(file as Record<string, unknown>)) {
      if (section !== 'gc' && section !== 'allocation') throw new Error(`${source}: unknown section ${section} (expected gc or allocation)`);
      if (typeof values !== 'object' || values === null || Array.isArray(values)) throw new Error(`${source}: ${section} must be a mapping`);
      for (const [name, value] of Object.entries(values as Record<string, unknown>)) {
        const key = `${section}.${name}`;
        if (!known.has(key)) throw new Error(`${source}: unknown setting ${key}`);
        const setting = SETTINGS.find((s) => s.key === key)!;
        setting.set(settings, convert(setting.kind, value, `${source} ${key}`));
      }
    }
  }
  for (const setting of SETTINGS) {
    const value = env[setting.env];
    if (value !== undefined && value !== '') setting.set(settings, convert(setting.kind, value, setting.env));
  }
  if (settings.sweepIntervalMs < 10_000) throw new Error(`the sweep interval must be at least 10s, not ${settings.sweepIntervalMs} ms`);
  return settings;
}

/** Parses the text of a YAML (or JSON) config file. */
export function parseConfigFile(text: string, path: string): unknown {
  try {
    return parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid YAML: ${(error as Error).message}`, { cause: error });
  }
}

/** The settings from the file named by TIDEPOOL_CONFIG (if set) and the environment. */
export function loadReclaimSettings(env: Readonly<Record<string, string | undefined>> = process.env): ReclaimSettings {
  const path = env.TIDEPOOL_CONFIG;
  if (!path) return resolveReclaimSettings(undefined, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read TIDEPOOL_CONFIG ${path}: ${(error as Error).message}`, { cause: error });
  }
  return resolveReclaimSettings(parseConfigFile(text, path), env, path);
}
