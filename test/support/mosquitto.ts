/**
 * Starts the real Mosquitto (/usr/sbin/mosquitto) with the project's own config
 * (config/mosquitto/) on a free loopback port, in a temp dir, and stops it by
 * PID. Never touches a broker already running on the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeLoopbackPort } from './freePort.js';
import { stopChild, waitForPort } from './process.js';

export const MOSQUITTO_BINARY = '/usr/sbin/mosquitto';
/** config/mosquitto of the project, found upwards from this file (it also runs compiled from dist/) */
export const CONFIG_DIR = findConfigDir(dirname(fileURLToPath(import.meta.url)));

function findConfigDir(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'config', 'mosquitto');
    if (existsSync(join(candidate, 'plain.conf'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`config/mosquitto not found above ${start}`);
  }
}

export interface MosquittoTls {
  /** PEM texts; written into the broker's temp dir */
  readonly caCertPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  /** The CA's CRL file, used where it is (tally pki keeps it current); without it the crlfile line is left out */
  readonly crlFile?: string;
}

export interface MosquittoOptions {
  /** With tls: config/mosquitto/mtls.conf and its ACL; without: plain.conf */
  readonly tls?: MosquittoTls;
  /** The receive maximum the broker advertises (Mosquitto's default is 20) */
  readonly maxInflight?: number;
  /** Extra lines appended to the config */
  readonly extraConfig?: string;
}

export interface RunningMosquitto {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** mqtt://127.0.0.1:port or mqtts://127.0.0.1:port: the terminals' listener */
  readonly url: string;
  /** The servers' listener (mtls.conf's second: client ids not bound to the CN); the same as url without tls */
  readonly serverUrl: string;
  readonly serverPort: number;
  readonly pid: number;
  readonly dir: string;
  /** The broker's stderr so far */
  log(): string;
  /** Stops it (SIGTERM by PID) and starts it again on the same port */
  restart(): Promise<void>;
  /** Stops it without removing the temp dir; start() brings it back on the same port */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes the temp dir */
  close(): Promise<void>;
}

function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`mosquitto template: no value for {{${name}}}`);
    return value;
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'tally-mosquitto-'));
  // run as root, Mosquitto drops to the mosquitto user and must still read its files
  chmodSync(dir, 0o755);
  const port = await freeLoopbackPort();
  const serverPort = options.tls ? await freeLoopbackPort() : port;
  const values: Record<string, string> = {
    PORT: String(port),
    BIND_ADDRESS: '127.0.0.1',
    MAX_INFLIGHT: String(options.maxInflight ?? 20),
    SERVER_PORT: String(serverPort),
    SERVER_BIND_ADDRESS: '127.0.0.1',
  };
  let templateName = 'plain.conf';
  if (options.tls) {
    templateName = 'mtls.conf';
    const files = { CA_FILE: 'ca.pem', CERT_FILE: 'server.pem', KEY_FILE: 'server-key.pem', ACL_FILE: 'acl', SERVER_ACL_FILE: 'acl-server' };
    writeFileSync(join(dir, files.CA_FILE), options.tls.caCertPem, { mode: 0o644 });
    writeFileSync(join(dir, files.CERT_FILE), options.tls.serverCertPem, { mode: 0o644 });
    writeFileSync(join(dir, files.KEY_FILE), options.tls.serverKeyPem, { mode: 0o644 });
    writeFileSync(join(dir, files.ACL_FILE), readFileSync(join(CONFIG_DIR, 'acl'), 'utf8'), { mode: 0o644 });
    writeFileSync(join(dir, files.SERVER_ACL_FILE), readFileSync(join(CONFIG_DIR, 'acl-server'), 'utf8'), { mode: 0o644 });
    for (const [key, file] of Object.entries(files)) values[key] = join(dir, file);
    if (options.tls.crlFile) values.CRL_FILE = options.tls.crlFile;
  }
  let template = readFileSync(join(CONFIG_DIR, templateName), 'utf8');
  if (values.CRL_FILE === undefined) template = template.replace(/^crlfile .*$/gm, '');
  // the broker writes its pid file after dropping to its own user, which cannot write here; tests know its pid
  template = template.replace(/^pid_file .*$/gm, '');
  let config = fillTemplate(template, values);
  if (options.extraConfig) config += `\n${options.extraConfig}\n`;
  const configFile = join(dir, 'mosquitto.conf');
  writeFileSync(configFile, config, { mode: 0o644 });

  let child: ChildProcess | undefined;
  let stderr = '';
  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawn(MOSQUITTO_BINARY, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-64_000);
    });
    try {
      for (const p of new Set([port, serverPort])) await waitForPort(p, '127.0.0.1', 10_000, () => proc.exitCode === null && proc.signalCode === null);
    } catch (err) {
      await stopChild(proc, 'SIGKILL');
      throw new Error(`mosquitto did not start: ${(err as Error).message}\n${stderr}`, { cause: err });
    }
  };
  const stop = async (): Promise<void> => {
    if (child) await stopChild(child, 'SIGTERM');
  };
  await start();
  return {
    host: '127.0.0.1',
    port,
    url: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    serverUrl: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${serverPort}`,
    serverPort,
    get pid() {
      return child?.pid ?? -1;
    },
    dir,
    log: () => stderr,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
