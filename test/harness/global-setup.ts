import type { TestProject } from 'vitest/node';
import { buildCni } from '../../scripts/build-cni.ts';
import { down, readStackInfo, up, type StackInfo } from '../../stack/stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/**
 * Builds tidepool-cni and brings the local stack up once for the integration suite, or reuses a running
 * one. A stack this set-up started is stopped again afterwards unless TIDEPOOL_KEEP_STACK=1; a reused one is
 * left running.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await buildCni();
  const running = readStackInfo();
  const info = running ?? (await up(undefined, (line) => console.log(`[stack] ${line}`)));
  project.provide('stack', info);
  return async () => {
    if (!running && process.env.TIDEPOOL_KEEP_STACK !== '1') await down();
  };
}
