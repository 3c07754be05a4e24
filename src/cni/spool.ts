// The DEL spool: a DEL that cannot reach the agent is written here by tidepool-cni (the invocation as it came:
// {"env", "stdin", "spooledAt"}), and one that cannot reach Temporal by the agent (the attachment); the agent
// replays both later, so that no release is ever lost. One file per attachment, written atomically and durably.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { AgentAttachment } from '../contract/agent-api.ts';
import { isStringMap } from '../contract/values.ts';
import { parseInvocation } from './netconf.ts';

export interface SpooledDel extends AgentAttachment {
  /** When the DEL was spooled (RFC 3339). */
  spooledAt: string;
}

const ENTRY_SUFFIX = '.json';
const TEMP_SUFFIX = '.tmp';
const CORRUPT_SUFFIX = '.corrupt';
/** Leaves room in 255 bytes for the hash, the suffixes and the temp file's pid and random part. */
export const MAX_NAME_PART = 180;

/**
 * Spools a DEL durably and gives the file's path: creates `dir` (mode 0700) if needed, writes a temp file
 * in it, fsyncs it, renames it to `<containerID>-<interface>.json` and fsyncs the directory. Spooling the same
 * attachment again replaces the file.
 */
export async function spoolDel(dir: string, request: Omit<SpooledDel, 'spooledAt'>): Promise<string> {
  if (!request.containerID || !request.interface) throw new Error('a spooled DEL needs a containerID and an interface');
  const entry: SpooledDel = { ...request, spooledAt: new Date().toISOString() };
  const firstCreated = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (firstCreated !== undefined) await fsyncCreatedDirectories(firstCreated, dir);

  const target = path.join(dir, spoolFileName(request.containerID, request.interface));
  const temp = `${target}.${process.pid}-${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`;
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(entry)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDirectory(dir);
  return target;
}

/**
 * The file name of an attachment's spooled DEL. Characters outside [A-Za-z0-9._-] become "_", and a name is
 * cut to MAX_NAME_PART characters (a file name has at most 255 bytes, and the temp file adds its suffix);
 * when either changed a name, a hash of the exact IDs keeps two different attachments from sharing one file.
 */
export function spoolFileName(containerID: string, interfaceName: string): string {
  const clean = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_');
  const base = `${clean(containerID)}-${clean(interfaceName)}`;
  if (clean(containerID) === containerID && clean(interfaceName) === interfaceName && base.length <= MAX_NAME_PART) return `${base}${ENTRY_SUFFIX}`;
  const hash = createHash('sha256').update(`${containerID}\0${interfaceName}`).digest('hex').slice(0, 12);
  return `${base.slice(0, MAX_NAME_PART)}-${hash}${ENTRY_SUFFIX}`;
}

export interface CorruptSpoolFile {
  path: string;
  /** Where the file was moved (`<name>.corrupt`), or undefined when it could not be read or moved. */
  movedTo: string | undefined;
  reason: string;
}

/**
 * The spooled DELs in `dir`, oldest first (by spooledAt). Temp files of unfinished writes are skipped. A
 * file that does not hold a valid SpooledDel is moved aside to `<name>.corrupt` and reported through
 * `onCorrupt` instead of being returned; it never fails the listing. A missing `dir` holds no DELs.
 */
export async function listSpooledDels(
  dir: string,
  onCorrupt: (corrupt: CorruptSpoolFile) => void = () => undefined,
): Promise<{ path: string; request: SpooledDel }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw error;
  }
  const entries: { path: string; request: SpooledDel; at: number }[] = [];
  for (const name of names.filter((n) => n.endsWith(ENTRY_SUFFIX)).sort()) {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') continue; // removed since readdir: replayed by someone else
      onCorrupt({ path: file, movedTo: undefined, reason: `cannot be read: ${messageOf(error)}` });
      continue;
    }
    const parsed = parseSpooledDel(text);
    if (typeof parsed === 'string') {
      const movedTo = `${file}${CORRUPT_SUFFIX}`;
      const moved = await rename(file, movedTo).then(
        () => true,
        () => false,
      );
      onCorrupt({ path: file, movedTo: moved ? movedTo : undefined, reason: parsed });
      continue;
    }
    entries.push({ path: file, request: parsed, at: Date.parse(parsed.spooledAt) });
  }
  // Stable sort: equal times keep the name order from above.
  return entries.sort((a, b) => a.at - b.at).map(({ path: file, request }) => ({ path: file, request }));
}

/** Removes a spooled DEL once it is replayed; removing one that is already gone is fine. */
export async function removeSpooledDel(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw error;
  }
}

function parseSpooledDel(text: string): SpooledDel | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${messageOf(error)}`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const record = value as Record<string, unknown>;
  if (record.stdin !== undefined) return parseSpooledInvocation(record);
  // A DEL spooled by a plugin from before the agent API named the interface `interface`.
  if (record.interface === undefined) record.interface = record.ifName;
  for (const key of ['containerID', 'interface', 'podNamespace', 'podName', 'podUID', 'spooledAt'] as const) {
    if (typeof record[key] !== 'string' || record[key] === '') return `"${key}" is missing or not a non-empty string`;
  }
  if (record.infraContainerID !== undefined && typeof record.infraContainerID !== 'string') {
    return '"infraContainerID" is not a string';
  }
  if (Number.isNaN(Date.parse(record.spooledAt as string))) return '"spooledAt" is not an RFC 3339 time';
  const entry: SpooledDel = {
    containerID: record.containerID as string,
    interface: record.interface as string,
    podNamespace: record.podNamespace as string,
    podName: record.podName as string,
    podUID: record.podUID as string,
    spooledAt: record.spooledAt as string,
  };
  if (record.infraContainerID !== undefined) entry.infraContainerID = record.infraContainerID as string;
  return entry;
}

/** A DEL that tidepool-cni spooled as it came, judged as the agent judges an invocation. */
function parseSpooledInvocation(record: Record<string, unknown>): SpooledDel | string {
  const { env, stdin, spooledAt } = record;
  if (typeof stdin !== 'string') return '"stdin" is not a string';
  if (!isStringMap(env)) return '"env" is not an object of strings';
  if (typeof spooledAt !== 'string' || Number.isNaN(Date.parse(spooledAt))) return '"spooledAt" is not an RFC 3339 time';
  const parsed = parseInvocation(env, stdin);
  if (!parsed.ok) return `not a DEL the agent takes: ${parsed.error.msg}`;
  if (parsed.invocation.command !== 'DEL') return `a spooled ${parsed.invocation.command}, not a DEL`;
  const { containerID, interface: interfaceName, pod } = parsed.invocation;
  return { containerID, interface: interfaceName, ...pod, spooledAt };
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** After `mkdir -p` created `firstCreated` .. `dir`, makes each new directory entry durable in its parent. */
async function fsyncCreatedDirectories(firstCreated: string, dir: string): Promise<void> {
  const stop = path.dirname(path.resolve(firstCreated));
  let current = path.resolve(dir);
  while (current !== stop && current !== path.dirname(current)) {
    await fsyncDirectory(path.dirname(current));
    current = path.dirname(current);
  }
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
