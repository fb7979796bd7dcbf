/** Tells Mosquitto to reread its files (crlfile among them): SIGHUP to the pid in its pid file. */
import { readFileSync } from 'node:fs';
import { TallyError } from '../errors.js';

export function reloadBroker(pidFile: string): number {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch (err) {
    throw new TallyError('CONFIG', `broker pid file ${pidFile}: ${(err as Error).message}`, {}, { cause: err });
  }
  if (!Number.isInteger(pid) || pid <= 1) throw new TallyError('CONFIG', `broker pid file ${pidFile} holds no pid`);
  process.kill(pid, 'SIGHUP');
  return pid;
}
