/**
 * sd_notify from Node, soundly. Node cannot send unix datagrams, and a
 * short-lived `systemd-notify` races PID 1: when it exits before systemd reads
 * its message, systemd cannot map the sender to our unit and drops it. So one
 * long-lived `socat` child, in our cgroup for the daemon's whole life, turns
 * lines on its stdin into datagrams on NOTIFY_SOCKET; the unit sets
 * NotifyAccess=all because that child is not the main PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../util/logger.js';

export interface SystemdNotifier {
  notify(state: string): void;
  close(): void;
}

const NONE: SystemdNotifier = { notify: () => undefined, close: () => undefined };

export function createSystemdNotifier(env: NodeJS.ProcessEnv, log: Logger): SystemdNotifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return NONE;
  const address = socket.startsWith('@') ? `ABSTRACT-SENDTO:${socket.slice(1)}` : `UNIX-SENDTO:${socket}`;
  let child: ChildProcess | undefined = spawn('socat', ['-u', 'STDIN', address], { stdio: ['pipe', 'ignore', 'pipe'] });
  child.on('error', (err) => {
    log.warn({ err: err.message }, 'cannot notify systemd (is socat installed?)');
    child = undefined;
  });
  child.on('exit', () => (child = undefined));
  child.stdin?.on('error', () => undefined);
  return {
    notify: (state) => {
      child?.stdin?.write(`${state}\n`);
    },
    close: () => {
      child?.stdin?.end();
      child = undefined;
    },
  };
}

/** Half the watchdog interval systemd asked for, in ms; undefined when it asked for none */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv): number | undefined {
  const usec = Number(env.WATCHDOG_USEC ?? 0);
  const pid = env.WATCHDOG_PID ? Number(env.WATCHDOG_PID) : undefined;
  if (!(usec > 0) || (pid !== undefined && pid !== process.pid)) return undefined;
  return Math.max(100, usec / 1000 / 2);
}
