import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stackConfig, stackPaths } from '../../stack/config.ts';
import { runningPid, startProcess, stopProcess, waitReady } from '../../stack/processes.ts';

function tempPaths() {
  return stackPaths({ ...stackConfig, dir: mkdtempSync(path.join(tmpdir(), 'tidepool-stack-')) });
}

const stray: number[] = [];
afterEach(() => {
  for (const pid of stray.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

describe('stack processes', () => {
  it('starts a detached process, finds it by pid file, and stops it', async () => {
    const paths = tempPaths();
    const spec = { name: 'sleeper', command: 'sleep', args: ['300'] };
    const pid = startProcess(paths, spec);
    stray.push(pid);
    expect(runningPid(paths, spec)).toBe(pid);
    expect(await stopProcess(paths, spec)).toBe(true);
    expect(runningPid(paths, spec)).toBeUndefined();
    expect(await stopProcess(paths, spec)).toBe(false);
  });

  it('with SIGKILL, kills at once: the process gets no SIGTERM to act on', async () => {
    const paths = tempPaths();
    const marker = path.join(paths.dir, 'got-sigterm');
    const ready = path.join(paths.dir, 'trap-set');
    const spec = { name: 'trapper', command: 'sh', args: ['-c', `trap 'echo > ${marker}' TERM; echo > ${ready}; while :; do sleep 0.05; done`], match: 'trap' };
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      rmSync(ready, { force: true });
      stray.push(startProcess(paths, spec));
      await waitReady(paths, spec, async () => existsSync(ready), 5000);
      expect(await stopProcess(paths, spec, 300, signal)).toBe(true);
      expect(runningPid(paths, spec)).toBeUndefined();
      expect(existsSync(marker), signal).toBe(signal === 'SIGTERM');
    }
  });

  it('never signals a process it did not start, even when a stale pid file names it', async () => {
    const paths = tempPaths();
    const other = spawn('sleep', ['300'], { stdio: 'ignore' });
    stray.push(other.pid!);
    mkdirSync(paths.pids, { recursive: true });
    writeFileSync(path.join(paths.pids, 'etcd.pid'), `${other.pid}\n`);
    const spec = { name: 'etcd', command: 'etcd' };
    expect(runningPid(paths, spec)).toBeUndefined();
    expect(await stopProcess(paths, spec)).toBe(false);
    expect(other.exitCode).toBeNull();
    expect(() => process.kill(other.pid!, 0)).not.toThrow();
  });

  it('a process that dies while starting fails the readiness wait with its log file and last lines', async () => {
    const paths = tempPaths();
    const spec = { name: 'broken', command: 'sh', args: ['-c', 'echo "bind: address already in use" >&2; exit 1'] };
    startProcess(paths, spec);
    await expect(waitReady(paths, spec, async () => false, 10_000)).rejects.toThrow(
      /broken exited while starting; read .*logs\/broken\.log[\s\S]*address already in use/,
    );
  });

  it('the readiness wait follows the pid it started even while its command line does not match yet', async () => {
    const paths = tempPaths();
    const spec = { name: 'renamed', command: 'sleep', args: ['300'], match: 'a command line it never has' };
    stray.push(startProcess(paths, spec));
    const readyAt = Date.now() + 600;
    await expect(waitReady(paths, spec, async () => Date.now() >= readyAt, 5000)).resolves.toBeUndefined();
    expect(existsSync(path.join(paths.pids, 'renamed.pid'))).toBe(true);
  });

  it('a process that never becomes ready fails after the timeout, naming its log file', async () => {
    const paths = tempPaths();
    const spec = { name: 'slow', command: 'sleep', args: ['300'] };
    stray.push(startProcess(paths, spec));
    await expect(
      waitReady(paths, spec, async () => {
        throw new Error('connection refused');
      }, 600),
    ).rejects.toThrow(/slow was not ready within 0.6 s \(last check: connection refused\); read .*logs\/slow\.log/);
    await stopProcess(paths, spec);
  });
});
