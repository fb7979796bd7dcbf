/**
 * Answers `tally terminal status` while the daemon runs: one JSON document per
 * connection on a unix socket in the data folder, mode 0600, so only the local
 * administrator can read it and nothing on the network can reach it.
 */
import { TallyError } from '../errors.js';
import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { closeServer, listenPrivate } from './localSocket.js';

export class StatusServer {
  private server: Server | undefined;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => unknown,
  ) {}

  async start(): Promise<void> {
    if (existsSync(this.path)) {
      // a socket left by a daemon that died: refuse only if someone still answers on it
      if (await isAnswering(this.path)) throw new TallyError('CONFIG', `another daemon answers on ${this.path}`);
      unlinkSync(this.path);
    }
    this.server = createServer((socket) => {
      socket.on('error', () => socket.destroy());
      let body: string;
      try {
        body = JSON.stringify(this.snapshot());
      } catch (err) {
        body = JSON.stringify({ error: (err as Error).message });
      }
      socket.end(`${body}\n`);
    });
    await listenPrivate(this.server, this.path);
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
    this.server = undefined;
  }
}

function isAnswering(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Reads the running daemon's status; undefined when no daemon answers */
export function queryStatus(path: string, timeoutMs = 2000): Promise<unknown> {
  return new Promise((resolve) => {
    if (!existsSync(path)) {
      resolve(undefined);
      return;
    }
    const socket = createConnection(path);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    socket.once('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text));
      } catch {
        resolve(undefined);
      }
    });
  });
}
