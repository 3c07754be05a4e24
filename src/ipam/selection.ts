import type { V1LabelSelector } from '@kubernetes/client-node';
import type { IPPool } from '../k8s/types.ts';
import type { Family } from '../contract/lifecycle.ts';
import { isTerminating, poolFamily } from './pool.ts';

export const POD_POOL_ANNOTATION = 'ipam.tidepool.dev/ippool';
export const POD_MULTI_NIC_ANNOTATION = 'ipam.tidepool.dev/ippools';
export const NAMESPACE_DEFAULT_ANNOTATION: Record<Family, string> = {
  4: 'ipam.tidepool.dev/default-ipv4-ippool',
  6: 'ipam.tidepool.dev/default-ipv6-ippool',
};

/** The pod's pool request is malformed or cannot be met; the message says what to fix. */
export class PoolSelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoolSelectionError';
  }
}

type Labels = Record<string, string> | undefined;

export interface SelectionInput {
  pod: { namespace: string; name: string; labels?: Labels; annotations?: Labels };
  namespace: { labels?: Labels; annotations?: Labels };
  node: { name: string; labels?: Labels } | undefined;
  interface: string;
  defaultPools: { ipv4?: string[]; ipv6?: string[] };
  pools: readonly IPPool[];
}

export interface PoolChoice {
  /** Where the pool names came from, for messages and history. */
  source: string;
  /** Per family, the usable pools in the order to try. Only requested families are present. */
  pools: Partial<Record<Family, string[]>>;
}

interface NamedPools {
  ipv4?: string[];
  ipv6?: string[];
}

function poolList(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.trim() === '')) {
    throw new PoolSelectionError(`${where} must be a list of pool names, got ${JSON.stringify(value)}`);
  }
  return value as string[];
}

function parseJson(text: string, where: string, shape: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PoolSelectionError(`${where} is not valid JSON (${(error as Error).message}); expected ${shape}`);
  }
}

const FAMILY_SHAPE = '{"ipv4":["pool-a"],"ipv6":["pool-b"]}';

function parseNamedPools(value: unknown, where: string, extraKeys: string[] = []): NamedPools {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PoolSelectionError(`${where} must be an object like ${FAMILY_SHAPE}`);
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !['ipv4', 'ipv6', ...extraKeys].includes(k));
  if (unknown.length > 0) {
    throw new PoolSelectionError(`${where} has unknown field(s) ${unknown.join(', ')}; expected ${FAMILY_SHAPE}`);
  }
  return { ipv4: poolList(record.ipv4, `${where}.ipv4`), ipv6: poolList(record.ipv6, `${where}.ipv6`) };
}

/** The pod annotation `ipam.tidepool.dev/ippool`, if present. */
export function parsePodPoolAnnotation(text: string): NamedPools {
  const where = `pod annotation ${POD_POOL_ANNOTATION}`;
  return parseNamedPools(parseJson(text, where, FAMILY_SHAPE), where);
}

/** The multi-NIC pod annotation `ipam.tidepool.dev/ippools`: one entry per interface. */
export function parseMultiNicAnnotation(text: string): Map<string, NamedPools> {
  const where = `pod annotation ${POD_MULTI_NIC_ANNOTATION}`;
  const shape = '[{"interface":"net1","ipv4":["pool-a"],"ipv6":["pool-b"]}]';
  const value = parseJson(text, where, shape);
  if (!Array.isArray(value)) throw new PoolSelectionError(`${where} must be a list like ${shape}`);
  const byInterface = new Map<string, NamedPools>();
  value.forEach((entry: unknown, index) => {
    const at = `${where}[${index}]`;
    const pools = parseNamedPools(entry, at, ['interface']);
    const name = (entry as { interface?: unknown }).interface;
    if (typeof name !== 'string' || name === '') throw new PoolSelectionError(`${at}.interface must name an interface`);
    if (byInterface.has(name)) throw new PoolSelectionError(`${where} names interface ${name} twice`);
    byInterface.set(name, pools);
  });
  return byInterface;
}

/** A namespace default annotation: a JSON list of pool names, or one bare name. */
export function parseNamespaceDefault(text: string, family: Family): string[] {
  const where = `namespace annotation ${NAMESPACE_DEFAULT_ANNOTATION[family]}`;
  const trimmed = text.trim();
  if (!trimmed.startsWith('[')) return trimmed === '' ? [] : [trimmed];
  return poolList(parseJson(trimmed, where, '["pool-a","pool-b"]'), where) ?? [];
}

export function matchesSelector(selector: V1LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return true;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const expression of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, expression.key);
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
        if (!present || !values.includes(have[expression.key]!)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(have[expression.key]!)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** Why `pool` cannot serve this pod for `family`, or undefined when it can. */
export function poolRejection(pool: IPPool, family: Family, input: SelectionInput): string | undefined {
  const spec = pool.spec;
  if (poolFamily(spec) !== family) return `is IPv${poolFamily(spec)}, not IPv${family}`;
  if (isTerminating(pool)) return 'is being deleted';
  if (spec.disable) return 'is disabled';
  if (spec.namespaceName?.length && !spec.namespaceName.includes(input.pod.namespace)) {
    return `does not serve namespace ${input.pod.namespace} (spec.namespaceName)`;
  }
  if (spec.nodeName?.length && !(input.node && spec.nodeName.includes(input.node.name))) {
    return `does not serve node ${input.node?.name ?? '(unscheduled)'} (spec.nodeName)`;
  }
  if (!matchesSelector(spec.namespaceAffinity, input.namespace.labels)) {
    return `does not match namespace ${input.pod.namespace} (spec.namespaceAffinity)`;
  }
  if (spec.nodeAffinity && !(input.node && matchesSelector(spec.nodeAffinity, input.node.labels))) {
    return `does not match node ${input.node?.name ?? '(unscheduled)'} (spec.nodeAffinity)`;
  }
  if (!matchesSelector(spec.podAffinity, input.pod.labels)) return 'does not match the pod (spec.podAffinity)';
  return undefined;
}

function namedSource(input: SelectionInput): { source: string; named: NamedPools } | undefined {
  const annotations = input.pod.annotations ?? {};
  const multiNic = annotations[POD_MULTI_NIC_ANNOTATION];
  if (multiNic !== undefined) {
    const entry = parseMultiNicAnnotation(multiNic).get(input.interface);
    if (entry) return { source: `pod annotation ${POD_MULTI_NIC_ANNOTATION} (interface ${input.interface})`, named: entry };
  }
  const single = annotations[POD_POOL_ANNOTATION];
  if (single !== undefined) return { source: `pod annotation ${POD_POOL_ANNOTATION}`, named: parsePodPoolAnnotation(single) };

  const nsAnnotations = input.namespace.annotations ?? {};
  const nsV4 = nsAnnotations[NAMESPACE_DEFAULT_ANNOTATION[4]];
  const nsV6 = nsAnnotations[NAMESPACE_DEFAULT_ANNOTATION[6]];
  if (nsV4 !== undefined || nsV6 !== undefined) {
    const named = {
      ipv4: nsV4 === undefined ? undefined : parseNamespaceDefault(nsV4, 4),
      ipv6: nsV6 === undefined ? undefined : parseNamespaceDefault(nsV6, 6),
    };
    if (named.ipv4?.length || named.ipv6?.length) return { source: `namespace ${input.pod.namespace} default annotations`, named };
  }
  const { ipv4, ipv6 } = input.defaultPools;
  if (ipv4?.length || ipv6?.length) return { source: 'CNI network configuration defaults', named: { ipv4, ipv6 } };
  return undefined;
}

/**
 * Chooses the pools to allocate from, in Spiderpool's order of precedence: the multi-NIC annotation's entry
 * for this interface, the pod annotation, the namespace's default annotations, the CNI netconf defaults,
 * then pools with spec.default. The first source that names pools decides which families are allocated;
 * named pools that do not exist, are of the wrong family, disabled, being deleted or do not match the pod,
 * its namespace or node are skipped. Throws PoolSelectionError when a requested family has no usable pool.
 */
export function choosePools(input: SelectionInput): PoolChoice {
  const byName = new Map(input.pools.map((pool) => [pool.metadata.name, pool]));
  const podName = `${input.pod.namespace}/${input.pod.name}`;
  const named = namedSource(input);

  if (named) {
    const pools: Partial<Record<Family, string[]>> = {};
    for (const family of [4, 6] as const) {
      const names = (family === 4 ? named.named.ipv4 : named.named.ipv6) ?? [];
      if (names.length === 0) continue;
      const reasons: string[] = [];
      const usable = names.filter((name) => {
        const pool = byName.get(name);
        const reason = pool ? poolRejection(pool, family, input) : 'does not exist';
        if (reason) reasons.push(`pool ${name} ${reason}`);
        return reason === undefined;
      });
      if (usable.length === 0) {
        throw new PoolSelectionError(`no usable IPv${family} pool for pod ${podName} from ${named.source}: ${reasons.join('; ')}`);
      }
      pools[family] = usable;
    }
    return { source: named.source, pools };
  }

  const defaults = input.pools
    .filter((pool) => pool.spec.default)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const pools: Partial<Record<Family, string[]>> = {};
  const reasons: string[] = [];
  for (const family of [4, 6] as const) {
    const usable = defaults.filter((pool) => {
      if (poolFamily(pool.spec) !== family) return false;
      const reason = poolRejection(pool, family, input);
      if (reason) reasons.push(`default pool ${pool.metadata.name} ${reason}`);
      return reason === undefined;
    });
    if (usable.length > 0) pools[family] = usable.map((pool) => pool.metadata.name);
  }
  if (pools[4] === undefined && pools[6] === undefined) {
    throw new PoolSelectionError(
      reasons.length > 0
        ? `no usable default pool for pod ${podName}: ${reasons.join('; ')}`
        : `no IPPool for pod ${podName}: annotate the pod with ${POD_POOL_ANNOTATION} (e.g. ${FAMILY_SHAPE}), ` +
            `set ${NAMESPACE_DEFAULT_ANNOTATION[4]} on namespace ${input.pod.namespace}, set default_ipv4_ippool ` +
            'in the CNI network configuration, or mark a pool spec.default: true',
    );
  }
  return { source: 'default pools (spec.default)', pools };
}
