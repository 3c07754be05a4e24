// The real Temporal server for `--temporal server`: PostgreSQL from Debian (its cluster made with initdb in the
// stack's folder, on 127.0.0.1), the schemas set up by temporal-sql-tool, the server's config file, and the
// two process specs. stack/build-temporal-server.sh builds the server and the tool.
import { execFileSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { StackConfig, StackPaths } from './config.ts';
import type { ProcessSpec } from './processes.ts';

/** The schema folders (postgres12) the build copies from the server's Go module into the cache. */
export function schemaDir(config: StackConfig): string {
  return path.join(path.dirname(config.binDir), 'temporal-schema', 'postgresql', 'v12');
}

const SQL_USER = 'temporal';
const DATABASES = [
  { name: 'temporal', schema: 'temporal' },
  { name: 'temporal_visibility', schema: 'visibility' },
] as const;

/** Debian's PostgreSQL server binaries (the newest major installed), or a clear error naming the fix. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((major) => existsSync(path.join(root, major, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) {
    throw new Error(
      'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres), which --temporal server runs on; ' +
        'run `TIDEPOOL_TEMPORAL=server bash stack/setup.sh` (./dev up --temporal server does), or apt-get install postgresql',
    );
  }
  return path.join(root, majors[0]!, 'bin');
}

/**
 * The user PostgreSQL runs as: this one, unless it is root (postgres refuses root), then Debian's `postgres`
 * user, which the package creates.
 */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  if (!line) throw new Error('PostgreSQL refuses to run as root, and there is no postgres user (apt-get install postgresql makes it)');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** postgres's path without failing when it is missing (down and status need the spec, not the program). */
function postgresCommand(): string {
  try {
    return path.join(postgresBinDir(), 'postgres');
  } catch {
    return '/usr/lib/postgresql/postgres';
  }
}

function logTo(paths: StackPaths, name: string): string {
  mkdirSync(paths.logs, { recursive: true });
  return path.join(paths.logs, `${name}.log`);
}

/** Runs a set-up command with its output appended to `log`; fails naming the log file and its last lines. */
function run(log: string, what: string, command: string, args: string[], user?: { uid: number; gid: number }): void {
  appendFileSync(log, `\n$ ${command} ${args.join(' ')}\n`);
  const fd = openSync(log, 'a');
  try {
    execFileSync(command, args, { stdio: ['ignore', fd, fd], ...user });
  } catch (error) {
    appendFileSync(log, `${error instanceof Error ? error.message : String(error)}\n`);
    const last = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-12).join('\n');
    throw new Error(`${what} failed; read ${log}. Its last lines:\n${last}`, { cause: error });
  } finally {
    closeSync(fd);
  }
}

/** Creates the stack's PostgreSQL cluster once (initdb; trust on 127.0.0.1 only, superuser `temporal`). */
export function ensurePostgresCluster(paths: StackPaths): void {
  if (existsSync(path.join(paths.postgresData, 'PG_VERSION'))) return;
  const user = postgresUser();
  mkdirSync(paths.postgresData, { recursive: true, mode: 0o700 });
  if (user) {
    execFileSync('chown', [`${user.uid}:${user.gid}`, paths.postgresData]);
    try {
      execFileSync('test', ['-w', paths.postgresData], { ...user, stdio: 'ignore' });
    } catch (error) {
      throw new Error(
        `PostgreSQL runs as the postgres user, which cannot reach ${paths.postgresData} (a folder above it is closed ` +
          'to other users); set TIDEPOOL_STACK_DIR to a folder it can reach, /tmp/tidepool-stack say',
        { cause: error },
      );
    }
  }
  run(logTo(paths, 'postgres-initdb'), 'initdb of the stack\'s PostgreSQL cluster', path.join(postgresBinDir(), 'initdb'), [
    '-D', paths.postgresData, '-U', SQL_USER, '--auth=trust', '-E', 'UTF8', '--no-instructions',
  ], user);
}

export function postgresSpec(config: StackConfig, paths: StackPaths): ProcessSpec {
  return {
    name: 'postgres',
    command: postgresCommand(),
    args: [
      '-D', paths.postgresData,
      '-c', `listen_addresses=${config.host}`,
      '-p', String(config.ports.postgres),
      '-c', `unix_socket_directories=${paths.postgresData}`,
      '-c', 'max_connections=200',
      // A throwaway local database: no fsync (a killed postgres still loses nothing; only a machine crash could).
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
    ],
    match: 'postgres',
    user: postgresUser,
    prepare: () => {
      postgresBinDir();
      ensurePostgresCluster(paths);
    },
  };
}

/**
 * Creates Temporal's two databases and their schemas the first time (create-database, setup-schema -v 0.0),
 * then brings both to the newest versioned schema the build ships (update-schema, a no-op when current).
 */
export function ensureTemporalSchemas(config: StackConfig, paths: StackPaths): void {
  const tool = path.join(config.binDir, 'temporal-sql-tool');
  const log = logTo(paths, 'temporal-sql-tool');
  const stamp = path.join(paths.postgresData, 'tidepool-temporal-databases');
  const base = ['--plugin', 'postgres12', '--ep', config.host, '-p', String(config.ports.postgres), '-u', SQL_USER, '--pw', SQL_USER];
  for (const db of DATABASES) {
    const args = [...base, '--db', db.name];
    const dir = path.join(schemaDir(config), db.schema);
    if (!existsSync(stamp)) {
      run(log, `temporal-sql-tool create-database ${db.name}`, tool, [...args, 'create-database']);
      run(log, `temporal-sql-tool setup-schema ${db.name}`, tool, [...args, 'setup-schema', '-v', '0.0']);
    }
    run(log, `temporal-sql-tool update-schema ${db.name}`, tool, [...args, 'update-schema', '-d', path.join(dir, 'versioned')]);
  }
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

/** The server's config file (the shape of its config/development-postgres12.yaml), all on 127.0.0.1. */
export function writeTemporalServerConfig(config: StackConfig, paths: StackPaths): string {
  const { host, ports } = config;
  mkdirSync(paths.temporalServerDir, { recursive: true });
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${host}:${ports.postgres}`,
      connectProtocol: 'tcp',
      user: SQL_USER,
      password: SQL_USER,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const service = (grpcPort: number, membershipPort: number, extra: Record<string, unknown> = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnIP: host, ...extra },
  });
  const internal = ports.temporalInternal;
  const dynamicConfig = path.join(paths.temporalServerDir, 'dynamicconfig.yaml');
  writeFileSync(
    dynamicConfig,
    stringify({
      // As on the dev server: a search attribute registered a moment ago is usable at once.
      'system.forceSearchAttributesCacheRefreshOnRead': [{ value: true }],
      'limit.maxIDLength': [{ value: 255 }],
    }),
  );
  const file = path.join(paths.temporalServerDir, 'config.yaml');
  writeFileSync(
    file,
    stringify({
      log: { stdout: true, level: 'warn', format: 'json' },
      persistence: {
        defaultStore: 'postgres-default',
        visibilityStore: 'postgres-visibility',
        numHistoryShards: 4,
        datastores: {
          'postgres-default': datastore('temporal', 20),
          'postgres-visibility': datastore('temporal_visibility', 10),
        },
      },
      global: {
        membership: { maxJoinDuration: '30s', broadcastAddress: host },
        metrics: { prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `${host}:${ports.temporalMetrics}` } },
      },
      services: {
        frontend: service(ports.temporal, internal, { httpPort: ports.temporalHttp }),
        history: service(internal + 1, internal + 2),
        matching: service(internal + 3, internal + 4),
        worker: service(internal + 5, internal + 6),
      },
      clusterMetadata: {
        enableGlobalNamespace: false,
        failoverVersionIncrement: 10,
        masterClusterName: 'active',
        currentClusterName: 'active',
        clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `${host}:${ports.temporal}` } },
      },
      dcRedirectionPolicy: { policy: 'noop' },
      dynamicConfigClient: { filepath: dynamicConfig, pollInterval: '10s' },
    }),
  );
  return file;
}

export function temporalServerSpec(config: StackConfig, paths: StackPaths): ProcessSpec {
  const file = path.join(paths.temporalServerDir, 'config.yaml');
  return {
    name: 'temporal-server',
    command: path.join(config.binDir, 'temporal-server'),
    args: ['--config-file', file, '--allow-no-auth', 'start'],
    prepare: () => {
      ensureTemporalSchemas(config, paths);
      writeTemporalServerConfig(config, paths);
    },
  };
}
