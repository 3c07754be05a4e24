// Builds tidepool-cni as a Node.js single executable application (SEA): the CNI bundle injected into a copy
// of the node binary running this script, so a host without Node.js can run the plugin. `npm run
// build:cni-sea` writes dist/tidepool-cni-sea; the Dockerfile builds it and the chart's init container
// installs it as /opt/cni/bin/tidepool. Run it with the Node.js the plugin should carry (Node 24 here).
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inject } from 'postject';
import { buildCni, CNI_BUNDLE } from './build-cni.ts';

export const CNI_SEA = path.join(path.dirname(CNI_BUNDLE), 'tidepool-cni-sea');
// The fuse string Node.js looks for to find an injected blob (nodejs.org/api/single-executable-applications.html).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Writes the executable to `output` (dist/tidepool-cni-sea unless told); the bundle is built on the side. */
export async function buildCniSea(output = CNI_SEA): Promise<string> {
  const work = await mkdtemp(path.join(tmpdir(), 'tidepool-cni-sea-'));
  try {
    const bundle = await buildCni(path.join(work, 'tidepool-cni.cjs'));
    const blob = path.join(work, 'sea-prep.blob');
    const seaConfig = path.join(work, 'sea-config.json');
    // No code cache or snapshot: both tie the blob to this exact node binary, which the copy is anyway,
    // but they make a build differ from run to run for ~nothing on a ~50 ms plugin.
    await writeFile(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false, useSnapshot: false }));
    await promisify(execFile)(process.execPath, ['--experimental-sea-config', seaConfig]);
    const executable = path.join(work, 'tidepool-cni');
    await copyFile(process.execPath, executable);
    await chmod(executable, 0o755);
    await inject(executable, 'NODE_SEA_BLOB', await readFile(blob), { sentinelFuse: SEA_FUSE });
    await mkdir(path.dirname(output), { recursive: true });
    // A rename, so that a runtime executing the previous file meanwhile never sees a half-written one.
    await copyFile(executable, `${output}.tmp`);
    await rename(`${output}.tmp`, output);
    return output;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${path.relative(process.cwd(), await buildCniSea())} with Node.js ${process.version}`);
}
