// Bundles tidepool-cni (src/cni/main.ts) into one executable file: `npm run build:cni` writes dist/tidepool-cni.
// Install it in the CNI bin directory (e.g. /opt/cni/bin) under the name of its ipam type, `tidepool`.
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distDir = path.join(root, 'dist');
export const CNI_BUNDLE = path.join(distDir, 'tidepool-cni');

/** Bundles the plugin into `outfile` (dist/tidepool-cni unless told), with the CommonJS marker beside it. */
export async function buildCni(outfile = CNI_BUNDLE): Promise<string> {
  await build({
    entryPoints: [path.join(root, 'src', 'cni', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node22',
    // CommonJS starts faster than ESM: on Node 24, 20 VERSION runs took ~50 ms each as CJS and ~75 ms as ESM,
    // whose loader costs more than the whole plugin. CJS needs no package.json around it (as in
    // /opt/cni/bin), but this repository's "type": "module" would make Node load the extensionless file
    // as ESM, hence the marker next to it.
    format: 'cjs',
    banner: { js: '#!/usr/bin/env node' },
    legalComments: 'none',
    logLevel: 'warning',
  });
  await writeFile(path.join(path.dirname(outfile), 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
  await chmod(outfile, 0o755);
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${path.relative(process.cwd(), await buildCni())}`);
}
