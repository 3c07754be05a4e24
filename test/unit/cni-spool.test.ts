import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  listSpooledDels,
  removeSpooledDel,
  spoolDel,
  spoolFileName,
  type CorruptSpoolFile,
  type SpooledDel,
} from '../../src/cni/spool.ts';

const del = { containerID: 'c0ffee', interface: 'net1', podNamespace: 'default', podName: 'web-0', podUID: 'uid-1' };

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tidepool-spool-'));
  dirs.push(dir);
  return dir;
}

function writeEntry(dir: string, name: string, entry: Partial<SpooledDel>): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(entry));
  return file;
}

describe('spoolDel', () => {
  it('creates the directory with mode 0700 and writes <containerID>-<interface>.json', async () => {
    const dir = path.join(tempDir(), 'var', 'spool');
    const before = Date.now();
    const file = await spoolDel(dir, { ...del, infraContainerID: 'infra-1' });

    expect(file).toBe(path.join(dir, 'c0ffee-net1.json'));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const written = JSON.parse(readFileSync(file, 'utf8')) as SpooledDel;
    expect(written).toMatchObject({ ...del, infraContainerID: 'infra-1' });
    expect(written.spooledAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Date.parse(written.spooledAt)).toBeGreaterThanOrEqual(before - 1);
    expect(readdirSync(dir)).toEqual(['c0ffee-net1.json']);
  });

  it('replaces the file when the same attachment is spooled again', async () => {
    const dir = tempDir();
    await spoolDel(dir, del);
    await spoolDel(dir, { ...del, podUID: 'uid-2' });
    expect(readdirSync(dir)).toEqual(['c0ffee-net1.json']);
    expect(JSON.parse(readFileSync(path.join(dir, 'c0ffee-net1.json'), 'utf8'))).toMatchObject({ podUID: 'uid-2' });
  });

  it('keeps file names to [A-Za-z0-9._-] and apart for IDs that differ only in replaced characters', () => {
    const slash = spoolFileName('ab/../c', 'net 1');
    const colon = spoolFileName('ab:..:c', 'net 1');
    expect(slash).toMatch(/^ab_\.\._c-net_1-[0-9a-f]{12}\.json$/);
    expect(colon).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(colon).not.toBe(slash);
    expect(spoolFileName('ab_.._c', 'net_1')).toBe('ab_.._c-net_1.json');
  });

  it('spools the DEL of a container ID too long for a file name (ENAMETOOLONG before) under a cut, hashed name', async () => {
    const dir = tempDir();
    const long = { ...del, containerID: 'a'.repeat(300) };
    const file = await spoolDel(dir, long);
    expect(path.basename(file)).toMatch(new RegExp(`^a{180}-[0-9a-f]{12}\\.json$`));
    expect(spoolFileName('a'.repeat(300), 'net1')).not.toBe(spoolFileName('a'.repeat(301), 'net1'));
    expect((await listSpooledDels(dir)).map((entry) => entry.request.containerID)).toEqual([long.containerID]);
  });

  it('fails when the directory cannot be created', async () => {
    const blocker = path.join(tempDir(), 'a-file');
    writeFileSync(blocker, '');
    await expect(spoolDel(path.join(blocker, 'spool'), del)).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});

describe('listSpooledDels', () => {
  it('reads a DEL that a plugin from before the rename spooled with "ifName"', async () => {
    const dir = tempDir();
    const { interface: name, ...rest } = del;
    writeFileSync(path.join(dir, 'c0ffee-net1.json'), JSON.stringify({ ...rest, ifName: name, spooledAt: '2026-11-01T00:00:00Z' }));
    expect((await listSpooledDels(dir)).map((entry) => [entry.request.containerID, entry.request.interface])).toEqual([['c0ffee', 'net1']]);
  });

  it('lists the spooled DELs oldest first and skips temp files', async () => {
    const dir = tempDir();
    writeEntry(dir, 'b-net1.json', { ...del, containerID: 'b', spooledAt: '2026-01-01T10:00:02Z' });
    writeEntry(dir, 'a-net1.json', { ...del, containerID: 'a', spooledAt: '2026-01-01T10:00:03Z' });
    writeEntry(dir, 'c-net1.json', { ...del, containerID: 'c', spooledAt: '2026-01-01T10:00:01.5+00:00' });
    writeFileSync(path.join(dir, 'd-net1.json.1234-abcd.tmp'), '{"containerID":');

    const listed = await listSpooledDels(dir);
    expect(listed.map(({ request }) => request.containerID)).toEqual(['c', 'b', 'a']);
    expect(listed[0]).toEqual({
      path: path.join(dir, 'c-net1.json'),
      request: { ...del, containerID: 'c', spooledAt: '2026-01-01T10:00:01.5+00:00' },
    });
  });

  it('gives back what spoolDel wrote', async () => {
    const dir = tempDir();
    const file = await spoolDel(dir, del);
    const [entry] = await listSpooledDels(dir);
    expect(entry?.path).toBe(file);
    expect(entry?.request).toMatchObject(del);
  });

  it('moves corrupt files aside to <name>.corrupt and reports them without failing', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'broken-net1.json'), '{"containerID": "broken"');
    writeEntry(dir, 'partial-net1.json', { containerID: 'partial', interface: 'net1', spooledAt: '2026-01-01T10:00:00Z' });
    writeEntry(dir, 'when-net1.json', { ...del, spooledAt: 'yesterday' });
    mkdirSync(path.join(dir, 'adir.json'));
    writeEntry(dir, 'good-net1.json', { ...del, containerID: 'good', spooledAt: '2026-01-01T10:00:00Z' });

    const corrupt: CorruptSpoolFile[] = [];
    const listed = await listSpooledDels(dir, (file) => corrupt.push(file));

    expect(listed.map(({ request }) => request.containerID)).toEqual(['good']);
    const byName = Object.fromEntries(corrupt.map((c) => [path.basename(c.path), c]));
    expect(byName['broken-net1.json']).toMatchObject({ movedTo: path.join(dir, 'broken-net1.json.corrupt') });
    expect(byName['broken-net1.json']?.reason).toMatch(/^not JSON: /);
    expect(byName['partial-net1.json']?.reason).toBe('"podNamespace" is missing or not a non-empty string');
    expect(byName['when-net1.json']?.reason).toBe('"spooledAt" is not an RFC 3339 time');
    expect(byName['adir.json']).toMatchObject({ movedTo: undefined });
    expect(readdirSync(dir).sort()).toEqual([
      'adir.json',
      'broken-net1.json.corrupt',
      'good-net1.json',
      'partial-net1.json.corrupt',
      'when-net1.json.corrupt',
    ]);
    expect(await listSpooledDels(dir)).toHaveLength(1);
  });

  it('finds nothing in a directory that does not exist yet', async () => {
    expect(await listSpooledDels(path.join(tempDir(), 'never-created'))).toEqual([]);
  });
});

describe('removeSpooledDel', () => {
  it('removes a spooled DEL and accepts removing it twice', async () => {
    const dir = tempDir();
    const file = await spoolDel(dir, del);
    await removeSpooledDel(file);
    expect(existsSync(file)).toBe(false);
    await expect(removeSpooledDel(file)).resolves.toBeUndefined();
  });
});
