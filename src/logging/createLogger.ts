/**
 * Structured JSON logs through pino, behind the project's Logger interface.
 * Each module logs under a namespace (`ns` or `module` binding) whose level can
 * be set on its own; keys, PINs and secrets are redacted by name wherever they
 * appear. Only roots (CLI, daemon, server) create loggers.
 */
import pino, { type Logger as PinoLogger } from 'pino';
import type { Logger } from '../util/logger.js';

export interface LoggerOptions {
  readonly level?: string;
  /** Level per namespace, e.g. { 'serial-reader': 'trace', sync: 'debug' } */
  readonly levels?: Record<string, string>;
  /** Where the JSON lines go; standard error by default (standard output is for the CLI's answers) */
  readonly destination?: NodeJS.WritableStream;
  readonly base?: Record<string, unknown>;
}

const SECRET_KEYS = ['pin', 'oldPin', 'newPin', 'password', 'privateKey', 'keySeed', 'seed', 'secret', 'key'];
export const REDACT_PATHS = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`)];

function wrap(logger: PinoLogger, levels: Record<string, string>): Logger {
  return {
    trace: (obj, msg) => logger.trace(obj, msg),
    debug: (obj, msg) => logger.debug(obj, msg),
    info: (obj, msg) => logger.info(obj, msg),
    warn: (obj, msg) => logger.warn(obj, msg),
    error: (obj, msg) => logger.error(obj, msg),
    child: (bindings) => {
      const ns = (bindings.ns ?? bindings.module) as string | undefined;
      const level = ns !== undefined ? levels[ns] : undefined;
      return wrap(logger.child(bindings, level ? { level } : {}), levels);
    },
  };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const root = pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid, ...(options.base ?? {}) },
      redact: { paths: REDACT_PATHS, censor: '***' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    (options.destination ?? process.stderr) as pino.DestinationStream,
  );
  // pino children keep their own level, so a namespace may be more verbose than the root
  return wrap(root, options.levels ?? {});
}
