import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackPaths } from './config.ts';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** Text the process's command line must contain to count as ours (default: the command's file name). */
  match?: string;
  /** The user to run as (PostgreSQL refuses root), asked for when it starts; undefined: this process's. */
  user?: () => { uid: number; gid: number } | undefined;
  /** Runs before the process starts (not when it already runs): initdb, a schema, a config file. */
  prepare?: () => void | Promise<void>;
}

function pidFile(paths: StackPaths, name: string): string {
  return path.join(paths.pids, `${name}.pid`);
}

export function logFile(paths: StackPaths, name: string): string {
  return path.join(paths.logs, `${name}.log`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/**
 * The pid of a process this stack started, if it still runs. A pid file whose process is gone, or whose pid
 * now belongs to another program, is stale and removed.
 */
export function runningPid(paths: StackPaths, spec: Pick<ProcessSpec, 'name' | 'command' | 'match'>): number | undefined {
  const pid = pidFromFile(paths, spec.name);
  if (pid !== undefined && alive(pid) && commandLine(pid).includes(spec.match ?? path.basename(spec.command))) return pid;
  rmSync(pidFile(paths, spec.name), { force: true });
  return undefined;
}

function pidFromFile(paths: StackPaths, name: string): number | undefined {
  const file = pidFile(paths, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Starts a detached process that outlives this one, logging to logs/<name>.log; returns its pid. */
export function startProcess(paths: StackPaths, spec: ProcessSpec): number {
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pids, { recursive: true });
  const log = openSync(logFile(paths, spec.name), 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...spec.env },
      ...spec.user?.(),
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
    child.unref();
    writeFileSync(pidFile(paths, spec.name), `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/**
 * Stops a process this stack started: SIGTERM (or `signal`, SIGINT for PostgreSQL's fast shutdown) to its
 * process group, SIGKILL after the grace period; with `signal: 'SIGKILL'`, SIGKILL at once (a crash, as the
 * chaos run injects it).
 */
export async function stopProcess(
  paths: StackPaths,
  spec: Pick<ProcessSpec, 'name' | 'command' | 'match'>,
  graceMs = 10_000,
  signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' = 'SIGTERM',
): Promise<boolean> {
  const pid = runningPid(paths, spec);
  if (pid === undefined) return false;
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  send(signal);
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) send('SIGKILL');
  while (alive(pid)) await sleep(50);
  rmSync(pidFile(paths, spec.name), { force: true });
  return true;
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log yet)';
  }
}

/**
 * Polls `check` until it returns true. Fails early when the process dies and after `timeoutMs`, each time
 * with an error that names the log file to read and shows its last lines.
 */
export async function waitReady(
  paths: StackPaths,
  spec: Pick<ProcessSpec, 'name'>,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const log = logFile(paths, spec.name);
  let lastError = '';
  // The pid file was just written, or just checked: only whether that process lives counts here. A first
  // `./dev up` after setup once found Temporal's pid file gone while Temporal ran, and only a failed
  // command-line check (runningPid) removes it.
  const pid = pidFromFile(paths, spec.name);
  while (Date.now() < deadline) {
    if (pid === undefined || !alive(pid)) {
      throw new Error(`${spec.name} exited while starting; read ${log}. Its last lines:\n${tail(log)}`);
    }
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await sleep(250);
  }
  throw new Error(
    `${spec.name} was not ready within ${timeoutMs / 1000} s${lastError ? ` (last check: ${lastError})` : ''}; ` +
      `read ${log}. Its last lines:\n${tail(log)}`,
  );
}
