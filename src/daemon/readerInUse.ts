/**
 * Which running terminal daemon holds a reader. A tool (issuing, provisioning,
 * a manual swipe) must not open a reader the daemon uses: both would see the
 * same cards (PC/SC shares readers; a serial board speaks to one host). Each
 * daemon answers on the status socket in its data folder and says there which
 * reader it holds; a tool asks the daemons it can know of: the one of a
 * terminal configuration file it was given, the one of the default (or
 * TALLY_*-overridden) configuration, and any data folder it works on.
 */
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { loadTerminalConfig } from '../config/terminalConfig.js';
import { queryStatus } from './StatusServer.js';

/** A reader a tool wants to open */
export type WantedReader = { readonly backend: 'serial'; readonly path: string } | { readonly backend: 'pcsc'; readonly readerName?: string };

/** What a daemon's status says of its reader (runTerminal's status) */
export interface DaemonReader {
  readonly backend: string;
  /** serial: the device path; pcsc: the configured name filter (absent: the first reader) */
  readonly device?: string;
  /** The reader's own name (the PC/SC reader's full name once attached) */
  readonly name?: string;
}

export interface ReaderHolder {
  readonly pid?: number;
  readonly dataDir?: string;
  readonly socket: string;
  readonly reader: DaemonReader;
}

function canonicalPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Whether the reader a daemon holds is the one wanted. PC/SC: once the daemon
 * has its reader, the tool's name filter picks it when that reader's name
 * contains the filter; before that (the daemon's name is its "pcsc:FILTER"
 * placeholder), unless both name different readers, assume the same.
 */
export function sameReader(wanted: WantedReader, held: DaemonReader): boolean {
  if (wanted.backend !== held.backend) return false;
  if (wanted.backend === 'serial') return held.device !== undefined && canonicalPath(held.device) === canonicalPath(wanted.path);
  const want = wanted.readerName?.toLowerCase();
  const filter = held.device?.toLowerCase();
  const actual = held.name !== undefined && !held.name.startsWith('pcsc:') ? held.name.toLowerCase() : undefined;
  // the tool takes "the first reader": perhaps the daemon's
  if (!want) return true;
  // a filter that is part of the bound reader's name ("ACR39U" of "ACS ACR39U 00 01") can name other readers too ("... 00 00")
  if (actual !== undefined) return actual.includes(want);
  if (!filter) return true;
  return filter.includes(want) || want.includes(filter);
}

/** Status sockets of the daemons a tool can know of: a configuration file's, the default configuration's, data folders' */
export function knownStatusSockets(options: { configFile?: string; dataDirs?: readonly string[]; env?: Record<string, string | undefined> } = {}): string[] {
  const sockets: string[] = [];
  // the given file's daemon, and the default configuration's (where systemd runs it)
  for (const file of [options.configFile, undefined]) {
    try {
      sockets.push(loadTerminalConfig(file, options.env ?? process.env).config.statusSocket);
    } catch {
      // an unreadable configuration names no daemon
    }
  }
  for (const dir of options.dataDirs ?? []) sockets.push(join(dir, 'status.sock'));
  return [...new Set(sockets)];
}

/** The running daemon that holds the wanted reader, if any answers on these sockets */
export async function daemonHolding(wanted: WantedReader, sockets: readonly string[], timeoutMs = 500): Promise<ReaderHolder | undefined> {
  for (const socket of sockets) {
    const status = (await queryStatus(socket, timeoutMs)) as { pid?: number; dataDir?: string; reader?: DaemonReader } | undefined;
    if (!status) continue;
    // a daemon too old to say which reader it holds: assume it holds this one
    const reader = status.reader ?? { backend: wanted.backend };
    if (status.reader && !sameReader(wanted, reader)) continue;
    return { socket, reader, ...(status.pid !== undefined ? { pid: status.pid } : {}), ...(status.dataDir !== undefined ? { dataDir: status.dataDir } : {}) };
  }
  return undefined;
}
