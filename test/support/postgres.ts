/**
 * A throw-away PostgreSQL cluster for tests: initdb and pg_ctl from
 * /usr/lib/postgresql/<version>/bin, run as the postgres OS user (tests run as
 * root and PostgreSQL refuses root), data and unix socket in a temp dir, TCP on
 * a free loopback port. Stopped by the postmaster's PID. Never uses a cluster
 * already running on the machine.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync, chmodSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './freePort.js';
import { isRunning } from './process.js';

export interface RunningPostgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: string;
  readonly pid: number;
  readonly dir: string;
  /** A connection string for a database on this cluster (default: postgres) */
  connectionString(database?: string): string;
  /** Creates a fresh database and returns its connection string */
  createDatabase(name: string): string;
  /** Fast shutdown by PID, then removes the temp dir */
  close(): Promise<void>;
}

export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql (run npm run setup)');
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error('no initdb under /usr/lib/postgresql/*/bin');
  return join(root, versions[0]!, 'bin');
}

const OS_USER = 'postgres';

function asPostgres(bin: string, args: string[]): string {
  const runAsRoot = userInfo().uid === 0;
  const command = runAsRoot ? 'runuser' : bin;
  const fullArgs = runAsRoot ? ['-u', OS_USER, '--', bin, ...args] : args;
  return execFileSync(command, fullArgs, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function startPostgres(): Promise<RunningPostgres> {
  const bin = postgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'tally-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  mkdirSync(dataDir);
  mkdirSync(socketDir);
  if (userInfo().uid === 0) {
    const uid = Number(execFileSync('id', ['-u', OS_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', OS_USER], { encoding: 'utf8' }).trim());
    for (const path of [dir, dataDir, socketDir]) chownSync(path, uid, gid);
  }
  chmodSync(dataDir, 0o700);
  asPostgres(join(bin, 'initdb'), ['-D', dataDir, '-U', OS_USER, '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freeLoopbackPort();
  const options = [
    `-p ${port}`,
    `-k ${socketDir}`,
    "-c listen_addresses=127.0.0.1",
    '-c fsync=on',
    '-c max_connections=50',
  ].join(' ');
  asPostgres(join(bin, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'server.log'), '-o', options, '-w', '-t', '30', 'start']);
  const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const connectionString = (database = 'postgres'): string => `postgresql://${OS_USER}@127.0.0.1:${port}/${database}`;
  return {
    host: '127.0.0.1',
    port,
    user: OS_USER,
    pid,
    dir,
    connectionString,
    createDatabase(name: string): string {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      asPostgres(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), name]);
      return connectionString(name);
    },
    async close(): Promise<void> {
      // SIGINT to the postmaster = fast shutdown
      if (isRunning(pid)) process.kill(pid, 'SIGINT');
      const deadline = Date.now() + 15_000;
      while (isRunning(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
