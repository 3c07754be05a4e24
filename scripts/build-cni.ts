// Builds tidepool-cni (src/cni/tidepool-cni, a small Go program) with the machine's Go toolchain: `npm run
// build:cni` writes dist/tidepool-cni. Install it in the CNI bin directory (e.g. /opt/cni/bin) under the name
// of its ipam type, `tidepool`. The facts it shares with the agent are linked in from the TypeScript that
// owns them, so each stays in one place.
import { execFile } from 'node:child_process';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AGENT_INVOKE_PATH } from '../src/contract/agent-api.ts';
import { CniErrorCode } from '../src/contract/cni-codes.ts';
import { NODE_DEFAULTS } from '../src/contract/defaults.ts';
import { MAX_TIMEOUT_SECONDS } from '../src/cni/ipam-config.ts';
import { NEWEST_CNI_VERSION, SUPPORTED_CNI_VERSIONS } from '../src/cni/spec.ts';
import { MAX_NAME_PART } from '../src/cni/spool.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CNI_SOURCE = path.join(root, 'src', 'cni', 'tidepool-cni');
export const CNI_BINARY = path.join(root, 'dist', 'tidepool-cni');

/** What the Go program must agree on with the agent (main.go's `facts`). */
export function cniFacts() {
  return {
    invokePath: AGENT_INVOKE_PATH,
    supportedVersions: [...SUPPORTED_CNI_VERSIONS],
    newestVersion: NEWEST_CNI_VERSION,
    agentSocket: NODE_DEFAULTS.agentSocket,
    spoolDir: NODE_DEFAULTS.spoolDir,
    maxTimeoutSeconds: MAX_TIMEOUT_SECONDS,
    timeoutSeconds: {
      add: NODE_DEFAULTS.pluginAddTimeoutSeconds,
      del: NODE_DEFAULTS.pluginDelTimeoutSeconds,
      status: NODE_DEFAULTS.pluginStatusTimeoutSeconds,
    },
    codes: {
      invalidEnvironment: CniErrorCode.InvalidEnvironment,
      ioFailure: CniErrorCode.IOFailure,
      tryAgainLater: CniErrorCode.TryAgainLater,
      pluginNotAvailable: CniErrorCode.PluginNotAvailable,
    },
    spoolNameMax: MAX_NAME_PART,
  };
}

/** The `go build` arguments that write the plugin to `output`; the Dockerfile runs the same. */
export function goBuildArgs(output: string): string[] {
  return ['build', '-trimpath', '-ldflags', `-s -w -X 'main.factsJSON=${JSON.stringify(cniFacts())}'`, '-o', output, '.'];
}

/** Builds the plugin into `output` (dist/tidepool-cni unless told), replacing it in one rename: a runtime may be running it. */
export async function buildCni(output = CNI_BINARY): Promise<string> {
  const built = `${output}.build-${process.pid}`;
  try {
    await promisify(execFile)('go', goBuildArgs(built), {
      cwd: CNI_SOURCE,
      env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    });
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`go build of tidepool-cni in ${CNI_SOURCE} failed: ${stderr?.trim() || message}`, { cause: error });
  }
  await rename(built, output);
  return output;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--go-build-args')) {
    // For the Dockerfile's Go stage: the arguments, one per line.
    console.log(goBuildArgs('/out/tidepool-cni').join('\n'));
  } else {
    console.log(`built ${path.relative(process.cwd(), await buildCni())}`);
  }
}
