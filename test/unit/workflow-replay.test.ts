import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { WORKFLOWS_PATH } from '../../src/worker/worker.ts';

const dir = path.resolve(import.meta.dirname, '../fixtures/histories');
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('podIPLifecycle replays its recorded histories deterministically', () => {
  it('has fixtures for the main paths', () => {
    expect(fixtures.sort()).toEqual([
      'failed-adds-then-allocated.json',
      'failed-no-free-ip.json',
      'failed-pod-gone.json',
      'released.json',
      'runtime-gc-kept-then-released.json',
      'runtime-gc-released.json',
      'sandbox-kept-then-released.json',
      'spooled-del.json',
      'statefulset-kept-then-released.json',
    ]);
  });

  it.each(fixtures)('%s', async (file) => {
    const history = historyFromJSON(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
    await expect(Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, file)).resolves.toBeUndefined();
  }, 60_000);
});
