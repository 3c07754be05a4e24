import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { buildCni } from '../../scripts/build-cni.ts';
import { devServerSearchAttributeArgs } from '../../src/temporal/search-attributes.ts';
import type { ComponentName, ExternalTemporal } from '../../stack/components.ts';
import { stackConfig } from '../../stack/config.ts';
import { chosenTemporal, down, installCrds, readStackInfo, startComponent, status, stopComponent, up, type StackInfo } from '../../stack/stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
    /** This run's value of SUITE_NAMESPACE_LABEL: its namespaces carry it, its workers reclaim only in them. */
    suiteRun: string;
  }
}

/**
 * Tidepool's own processes on the stack, in the order `up` starts them. The simulated kubelet of `./dev up`
 * stays: it starts only the default namespace's pods, and its Ready node keeps the node-lifecycle controller
 * out of its zone-disruption mode (which stops evictions) in the suite's node tests.
 */
const TIDEPOOL_PROCESSES: ComponentName[] = ['tidepool-webhook', 'tidepool-worker', 'tidepool-agent'];

/** Whether the suite pauses this process of the stack: Tidepool's webhook and agent, and every worker. */
const pausedForSuite = (name: string) => (TIDEPOOL_PROCESSES as string[]).includes(name) || name.startsWith('tidepool-worker-');

/**
 * Builds tidepool-cni and brings the local stack up once for the integration suite, or reuses a running
 * one. A stack this set-up started is stopped again afterwards unless TIDEPOOL_KEEP_STACK=1; a reused one is
 * left running. On a stack that `./dev up` started, Tidepool's own webhook, worker and agent are stopped for
 * the suite and started again afterwards: the suite runs its own Tidepool per test file, and the stack's
 * controller, sweep and webhook would otherwise act on the suite's pools and pods (and the suite's on theirs).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  project.provide('suiteRun', randomBytes(4).toString('hex'));
  await buildCni();
  const log = (line: string) => console.log(`[stack] ${line}`);
  if (process.env.TIDEPOOL_TEMPORAL === 'testcontainers') {
    const temporal = await startTemporalContainer();
    project.provide('stack', await up(undefined, log, { externalTemporal: temporal }));
    return async () => {
      await down();
      await temporal.stop();
    };
  }
  // TIDEPOOL_TEMPORAL=server on a stack that runs the dev server (or the other way round) fails here, clearly.
  chosenTemporal();
  const running = readStackInfo();
  // A stack that `./dev up` started earlier may serve older CRDs than this tree's.
  if (running) await installCrds(undefined, log);
  const info = running ?? (await up(undefined, log));
  const stopped = status()
    .filter((component) => pausedForSuite(component.name) && component.pid !== undefined)
    .map((component) => component.name as ComponentName);
  for (const name of [...stopped].reverse()) {
    await stopComponent(name, 'SIGTERM');
    log(`${name}: stopped for the suite; started again when it ends`);
  }
  project.provide('stack', info);
  return async () => {
    if (!running && process.env.TIDEPOOL_KEEP_STACK !== '1') {
      await down();
      return;
    }
    for (const name of stopped) await startComponent(name, undefined, log);
    // The suite's own `up` calls rewrote the stack's info while Tidepool was paused; as many workers as before.
    const workers = stopped.filter((name) => name.startsWith('tidepool-worker')).length;
    if (stopped.length > 0) await up({ ...stackConfig, workers: Math.max(workers, 1) }, log, { tidepool: true });
  };
}

/**
 * Where a Docker engine runs: Temporal's dev server from the temporalio/temporal image, at the CLI version
 * stack/setup.sh installs, with Tidepool's search attributes. Loaded only when asked for.
 */
async function startTemporalContainer(): Promise<ExternalTemporal & { stop: () => Promise<unknown> }> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(`temporalio/temporal:${process.env.TIDEPOOL_TEMPORAL_IMAGE_TAG ?? '1.9.1'}`)
    .withCommand(['server', 'start-dev', '--ip', '0.0.0.0', ...devServerSearchAttributeArgs()])
    .withExposedPorts(7233, 8233)
    .withWaitStrategy(Wait.forListeningPorts())
    .start();
  const host = container.getHost();
  return {
    address: `${host}:${container.getMappedPort(7233)}`,
    ui: `http://${host}:${container.getMappedPort(8233)}`,
    stop: () => container.stop(),
  };
}
