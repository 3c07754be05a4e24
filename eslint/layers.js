// A local ESLint rule that keeps src/'s folders in layers: each folder may import only the folders its entry
// in LAYERS names (type-only imports, which vanish at run time, may also reach the folders in TYPE_ONLY), so
// no two folders ever import each other in a circle. docs/architecture.md shows the same map.
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '..', 'src');

/** What each part of src/ may import. A root file (src/config.ts) is a part of its own, named without `.ts`. */
export const LAYERS = {
  contract: [],
  config: ['contract', 'temporal'],
  log: [],
  k8s: ['contract'],
  temporal: ['contract'],
  ipam: ['contract', 'k8s'],
  gc: ['contract', 'k8s', 'ipam', 'temporal', 'config'],
  metrics: ['contract', 'k8s', 'ipam'],
  store: ['contract', 'k8s', 'ipam', 'gc'],
  activities: ['contract', 'k8s', 'ipam', 'gc', 'temporal', 'store', 'metrics'],
  workflows: ['contract', 'temporal'],
  controller: ['contract', 'log', 'k8s', 'ipam', 'gc', 'temporal'],
  webhook: ['contract', 'k8s', 'ipam', 'config', 'log'],
  cni: ['contract'],
  agent: ['contract', 'cni', 'temporal', 'config', 'log'],
  cli: ['contract', 'config', 'k8s', 'ipam', 'gc', 'temporal'],
  worker: ['contract', 'config', 'log', 'k8s', 'ipam', 'gc', 'temporal', 'store', 'metrics', 'activities', 'controller'],
};

/** Imports that only the type checker sees: a workflow names its activities' and the sweep's types. */
export const TYPE_ONLY = { workflows: ['activities', 'gc'] };

function partOf(file) {
  const relative = path.relative(SRC, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  const [first, ...rest] = relative.split(path.sep);
  return rest.length === 0 ? first.replace(/\.ts$/, '') : first;
}

export default {
  meta: {
    type: 'problem',
    docs: { description: "keeps src/'s folders in the layers of eslint/layers.js, with no import cycle between them" },
    schema: [],
    messages: {
      unknownPart: 'src/{{part}} has no entry in eslint/layers.js: add it with the parts it may import.',
      forbidden: 'src/{{from}} may not import src/{{to}} (allowed: {{allowed}}); see eslint/layers.js and docs/architecture.md.',
    },
  },
  create(context) {
    const from = partOf(context.filename);
    if (from === undefined) return {};
    const check = (node, source, typeOnly) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const to = partOf(path.resolve(path.dirname(context.filename), source));
      if (to === undefined || to === from) return;
      const allowed = LAYERS[from];
      if (allowed === undefined) {
        context.report({ node, messageId: 'unknownPart', data: { part: from } });
        return;
      }
      if (allowed.includes(to) || (typeOnly && (TYPE_ONLY[from] ?? []).includes(to))) return;
      context.report({ node, messageId: 'forbidden', data: { from, to, allowed: allowed.join(', ') || 'nothing' } });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value, node.importKind === 'type'),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value, node.exportKind === 'type'),
      ExportAllDeclaration: (node) => check(node, node.source.value, node.exportKind === 'type'),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value, false),
    };
  },
};
