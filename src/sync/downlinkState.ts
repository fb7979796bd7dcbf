/**
 * What the server sends a terminal to keep (config, deny list, time): each is
 * checked against the last good state, a bad one is refused with a recorded
 * reason and answered on the response topic, and the last good state is kept.
 */
import type { ConfigPayload, DenylistPayload, ResponsePayload } from '../codecs/mqtt/messages.js';
import { CLOCK_FLOOR_MS, type Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';

/** The last good state received from the server; the daemon persists it (save) and gives it back at start (initial) */
export interface SyncState {
  readonly config?: ConfigPayload;
  readonly denylist?: { readonly version: number; readonly cards: readonly string[] };
  /** serverTime - local clock at the last time message */
  readonly clockOffsetMs?: number;
}

export interface Refusal {
  readonly at: number;
  readonly kind: string;
  readonly reason: string;
  readonly detail: string;
}

export interface DenylistUpdate {
  readonly version: number;
  /** true: `add` is the whole list; false: a change to the previous version */
  readonly full: boolean;
  /** Card ids, hex */
  readonly add: readonly string[];
  readonly remove: readonly string[];
}

/** The request a refusal answers on the response topic */
export interface AnsweredRequest {
  readonly transaction: number;
  readonly request: ResponsePayload['request'];
}

export interface DownlinkStateOptions {
  /** The clinic of this terminal's certificate; a config for another clinic is refused */
  readonly clinicCode: string | undefined;
  readonly initialState?: SyncState;
  readonly saveState?: (state: SyncState) => void;
  readonly onDenylist?: (update: DenylistUpdate) => void;
  readonly onConfig?: (config: ConfigPayload) => void;
  readonly onServerTime?: (serverTime: number, localTime: number) => void;
  /** A newer config was accepted: the client applies its policy and connection settings */
  readonly applyConfig: (config: ConfigPayload) => void;
  /** Answers a request on the response topic (ok, or the refusal's reason) */
  readonly respond: (tx: number, request: ResponsePayload['request'], error?: { code: string; message: string }) => void;
  /** Counts each refusal */
  readonly refused: () => void;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface DownlinkState {
  state(): SyncState;
  refusals(): readonly Refusal[];
  /** Records a refused server message (and answers its request when it names one) */
  refuse(kind: string, reason: string, detail: string, request?: AnsweredRequest): void;
  config(config: ConfigPayload): void;
  denylist(list: DenylistPayload): void;
  time(tx: number, serverTime: number): void;
}

const MAX_REFUSALS_KEPT = 100;

export function createDownlinkState(options: DownlinkStateOptions): DownlinkState {
  const { clock, logger, respond } = options;
  const refusalLog: Refusal[] = [];
  let state: SyncState = options.initialState ?? {};

  const refuse = (kind: string, reason: string, detail: string, request?: AnsweredRequest): void => {
    const refusal = { at: clock.now(), kind, reason, detail: detail.slice(0, 300) };
    refusalLog.push(refusal);
    if (refusalLog.length > MAX_REFUSALS_KEPT) refusalLog.shift();
    options.refused();
    logger.warn({ kind, reason, detail }, 'server message refused');
    if (request) respond(request.transaction, request.request, { code: reason, message: detail.slice(0, 500) });
  };

  const saveState = (next: SyncState): void => {
    state = next;
    try {
      options.saveState?.(state);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'could not save sync state');
    }
  };

  return {
    state: () => state,
    refusals: () => refusalLog,
    refuse,
    config(config) {
      const current = state.config?.version ?? 0;
      if (config.version < current) return refuse('config', 'stale-version', `version ${config.version} is older than ${current}`, { transaction: config.transaction, request: 'config' });
      if (options.clinicCode !== undefined && config.clinicCode !== options.clinicCode) {
        return refuse('config', 'wrong-clinic', `config for clinic ${config.clinicCode}, this terminal belongs to ${options.clinicCode}`, { transaction: config.transaction, request: 'config' });
      }
      if (config.version > current) {
        saveState({ ...state, config });
        options.applyConfig(config);
        try {
          options.onConfig?.(config);
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'config callback failed');
        }
      }
      respond(config.transaction, 'config');
    },
    denylist(list) {
      const current = state.denylist;
      const request = { transaction: list.transaction, request: 'denylist' as const };
      if (current && list.version <= current.version) {
        // the retained full list comes again at every reconnect: the same version is fine
        if (list.version === current.version) return respond(list.transaction, 'denylist');
        return refuse('denylist', 'stale-version', `version ${list.version} is older than ${current.version}`, request);
      }
      let cards: string[];
      if (list.kind === 'full') cards = [...new Set(list.add)].sort();
      else {
        if (!current || current.version !== list.baseVersion) {
          return refuse('denylist', 'version-mismatch', `delta from version ${list.baseVersion} but this terminal has ${current?.version ?? 'none'}: send a full list`, request);
        }
        const set = new Set(current.cards);
        for (const id of list.add) set.add(id);
        for (const id of list.remove ?? []) set.delete(id);
        cards = [...set].sort();
      }
      try {
        options.onDenylist?.({ version: list.version, full: list.kind === 'full', add: list.add, remove: list.remove ?? [] });
      } catch (err) {
        return refuse('denylist', 'apply-failed', (err as Error).message, request);
      }
      saveState({ ...state, denylist: { version: list.version, cards } });
      respond(list.transaction, 'denylist');
    },
    time(tx, serverTime) {
      if (serverTime < CLOCK_FLOOR_MS) return refuse('time', 'implausible-time', `server time ${new Date(serverTime).toISOString()} is before ${new Date(CLOCK_FLOOR_MS).toISOString()}`, { transaction: tx, request: 'time' });
      const local = clock.now();
      try {
        options.onServerTime?.(serverTime, local);
      } catch (err) {
        return refuse('time', 'not-applied', (err as Error).message, { transaction: tx, request: 'time' });
      }
      saveState({ ...state, clockOffsetMs: serverTime - local });
      respond(tx, 'time');
    },
  };
}
