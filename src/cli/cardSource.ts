/**
 * Where the issuing and provisioning tools find their cards: simulated card
 * files (the default), or a real reader slot (the terminal's board over a
 * serial line, or a PC/SC reader through pcscd). With a reader the tool
 * prompts on stderr and waits for the card the next step needs.
 *
 * One slot serves every card of a step. When a step needs two cards at once
 * (the mother card signs what the white card made), the operator swaps them
 * as prompted; on re-insertion the card is checked to be the same chip and
 * its applet selection and PIN verification are replayed, because a card
 * forgets both when it loses power. With --signer-reader the signing card
 * stays in a second reader instead, and nothing is swapped.
 */
import { existsSync } from 'node:fs';
import { CardClient } from '../card/CardClient.js';
import { INS } from '../codecs/applet.js';
import { toHex } from '../codecs/bytes.js';
import { ConfigError } from '../config/schema.js';
import { loadTerminalConfig } from '../config/terminalConfig.js';
import { daemonHolding, knownStatusSockets } from '../daemon/readerInUse.js';
import { isTallyError, TallyError, type ErrorName } from '../errors.js';
import type { CardReader, CardSession, OperatorPanel, PanelMessage, ReaderEvent } from '../readers/CardReader.js';
import { directChannel, type ApduChannel } from '../card/ApduChannel.js';
import { newCardFile, openCardFile } from '../sim/cardFile.js';
import { integer, type Options } from './args.js';
import { cliLocale, phrase, prompt } from './cliLocale.js';
import type { CliIo } from './command.js';
import { CARD_READER_OPTIONS, optionSynopsis, parseArgsOptions } from './options.js';

export type ReaderSpec =
  | { readonly backend: 'file' }
  | { readonly backend: 'serial'; readonly path: string; readonly baudRate?: number; readonly reopenDelayMs?: number }
  | { readonly backend: 'pcsc'; readonly readerName?: string };

/** The parser table of CARD_READER_OPTIONS, for the commands not yet declared with defineCommand */
export const READER_OPTIONS: Options = parseArgsOptions(CARD_READER_OPTIONS);

/** The help lines of CARD_READER_OPTIONS, for the commands not yet declared with defineCommand */
export const READER_HELP = Object.entries(CARD_READER_OPTIONS)
  .map(([name, o]) => `  ${optionSynopsis(name, o).padEnd(22)} ${o.description}${o.default ? ` (default ${o.default})` : ''}`)
  .join('\n');

const DEFAULT_CARD_TIMEOUT_S = 60;

/** "file", "serial:/dev/ttyS1", "pcsc", "pcsc:ACS ACR39" */
export function parseReaderSpec(text: string): ReaderSpec {
  const colon = text.indexOf(':');
  const kind = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  if (kind === 'file' && rest === '') return { backend: 'file' };
  if (kind === 'serial' && rest !== '') return { backend: 'serial', path: rest };
  if (kind === 'pcsc') return rest === '' ? { backend: 'pcsc' } : { backend: 'pcsc', readerName: rest };
  throw new TallyError('USAGE', `--reader ${text}: expected file, serial:PATH, pcsc or pcsc:NAME`);
}

/**
 * --reader wins; then --reader-config FILE; then TALLY_READER_BACKEND (and the
 * other TALLY_READER_* settings) read through the daemon's schema; else files.
 */
export function readerSpecFrom(values: Record<string, unknown>, env: Record<string, string | undefined> = process.env): ReaderSpec {
  if (typeof values.reader === 'string') return parseReaderSpec(values.reader);
  const file = typeof values['reader-config'] === 'string' ? values['reader-config'] : undefined;
  if (file === undefined && env.TALLY_READER_BACKEND === undefined) return { backend: 'file' };
  let reader;
  try {
    reader = loadTerminalConfig(file, env).config.reader;
  } catch (err) {
    if (err instanceof ConfigError) throw new TallyError('CONFIG', err.message);
    throw err;
  }
  switch (reader.backend) {
    case 'serial':
      return { backend: 'serial', path: reader.path, baudRate: reader.baudRate, reopenDelayMs: reader.reopenDelayMs };
    case 'pcsc':
      return reader.readerName ? { backend: 'pcsc', readerName: reader.readerName } : { backend: 'pcsc' };
    case 'simulated':
      throw new TallyError('CONFIG', `reader.backend simulated is the daemon's in-process board; the tools take card files with --reader file`);
  }
}

export function cardTimeoutMs(values: Record<string, unknown>): number {
  const seconds = integer(values, 'card-timeout', DEFAULT_CARD_TIMEOUT_S);
  if (seconds < 1) throw new TallyError('USAGE', '--card-timeout must be at least 1 second');
  return seconds * 1000;
}

/** One card a step needs */
export interface CardRole {
  /** Names the card in prompts: "the mother card", "one-time card 7 of 20" */
  readonly name: string;
  /** The step writes a new card here: the prompt asks for a blank one */
  readonly blank?: boolean;
  /** The mother or white card that signs: goes to --signer-reader when there is one */
  readonly signer?: boolean;
  /** With --reader file: the card file (created blank when missing and blank is set) */
  readonly file?: string;
  /** The option that names the file, for the error when it is missing */
  readonly fileOption?: string;
}

export interface CardSource {
  readonly spec: ReaderSpec;
  /** A channel to the card playing this role; with a reader, the first command waits for it */
  channel(role: CardRole): ApduChannel;
  /** The same channel, once the card is in the slot (a timeout is an error here, before any work starts) */
  card(role: CardRole): Promise<ApduChannel>;
  /** With a reader: asks for the card to be removed and waits (a warning, not an error, on timeout) */
  finish(): Promise<void>;
  /** Shows a message on the reader's display, where it has one (the terminal board) */
  show(message: PanelMessage): Promise<void>;
  close(): Promise<void>;
}

/** Opens the source, runs the step, asks for the last card to be removed, and closes the reader */
export async function withCardSource<T>(values: Record<string, unknown>, io: CliIo, step: (source: CardSource) => Promise<T>): Promise<T> {
  const source = await openCardSource(values, io);
  try {
    const result = await step(source).catch((err: unknown) => {
      // as in the demo: a wrong PIN says how many tries are left before the card blocks
      if (isTallyError(err, 'PIN_WRONG') && typeof err.context.triesLeft === 'number') {
        const detail = err.message.slice(err.message.indexOf(': ') + 2);
        throw new TallyError('PIN_WRONG', `${prompt({ kind: 'tries-left', tries: err.context.triesLeft }, 'en')} (${detail})`, { ...err.context, detailZh: prompt({ kind: 'tries-left', tries: err.context.triesLeft }, 'zh') }, { cause: err });
      }
      throw err;
    });
    await source.finish();
    return result;
  } finally {
    await source.close();
  }
}

export async function openCardSource(values: Record<string, unknown>, io: CliIo): Promise<CardSource> {
  const spec = readerSpecFrom(values);
  const signerSpec = typeof values['signer-reader'] === 'string' ? parseReaderSpec(values['signer-reader']) : undefined;
  if (spec.backend === 'file') {
    if (signerSpec) throw new TallyError('USAGE', '--signer-reader goes with a reader (--reader or --reader-config), not with card files');
    return fileSource();
  }
  if (signerSpec?.backend === 'file') throw new TallyError('USAGE', '--signer-reader must name a reader: serial:PATH or pcsc[:NAME]');
  await refuseReadersHeldByDaemon([spec, ...(signerSpec ? [signerSpec] : [])], values);
  const timeoutMs = cardTimeoutMs(values);
  const slot = await openSlot(spec, io, timeoutMs, '');
  if (!signerSpec) return slot;
  let signer: ReaderSlot;
  try {
    signer = await openSlot(signerSpec, io, timeoutMs, '[signer reader] ');
  } catch (err) {
    await slot.close();
    throw err;
  }
  const pick = (role: CardRole): ReaderSlot => (role.signer ? signer : slot);
  return {
    spec,
    channel: (role) => pick(role).channel(role),
    card: (role) => pick(role).card(role),
    finish: async () => {
      await slot.finish();
      await signer.finish();
    },
    show: (message) => slot.show(message),
    close: async () => {
      await slot.close();
      await signer.close();
    },
  };
}

/**
 * A reader a running terminal daemon holds is not opened: both would see the
 * same cards. Asked before any reader is opened or any card is waited for.
 */
async function refuseReadersHeldByDaemon(specs: readonly Exclude<ReaderSpec, { backend: 'file' }>[], values: Record<string, unknown>): Promise<void> {
  const sockets = knownStatusSockets(typeof values['reader-config'] === 'string' ? { configFile: values['reader-config'] } : {});
  for (const spec of specs) {
    const holder = await daemonHolding(spec.backend === 'serial' ? { backend: 'serial', path: spec.path } : { backend: 'pcsc', ...(spec.readerName ? { readerName: spec.readerName } : {}) }, sockets);
    if (holder) {
      const who = [holder.pid !== undefined ? `pid ${holder.pid}` : undefined, holder.dataDir !== undefined ? `data ${holder.dataDir}` : undefined].filter(Boolean).join(', ');
      throw new TallyError('READER_IN_USE', `${describeReaderSpec(spec)} is held by the running terminal daemon${who ? ` (${who})` : ''}: stop it first (systemctl stop tallystick-terminal)`);
    }
  }
}

async function openSlot(spec: Exclude<ReaderSpec, { backend: 'file' }>, io: CliIo, timeoutMs: number, prefix: string): Promise<ReaderSlot> {
  const slot = new ReaderSlot(spec, await openReader(spec), io, timeoutMs, prefix);
  try {
    await slot.start();
  } catch (err) {
    await slot.close();
    throw err;
  }
  return slot;
}

function fileSource(): CardSource {
  return {
    spec: { backend: 'file' },
    channel(role) {
      if (!role.file) throw new TallyError('USAGE', `${role.fileOption ? `--${role.fileOption}` : 'a card file'} is required for ${role.name} (or choose a reader with --reader)`);
      if (!role.blank && !existsSync(role.file)) throw new TallyError('USAGE', `no card file ${role.file} for ${role.name}${role.fileOption ? ` (--${role.fileOption})` : ''}`);
      let card;
      try {
        card = role.blank && !existsSync(role.file) ? newCardFile(role.file) : openCardFile(role.file);
      } catch (err) {
        throw new TallyError('USAGE', `${role.file} (${role.name}) cannot be read as a card file: ${(err as Error).message}`);
      }
      return directChannel(card);
    },
    async card(role) {
      return this.channel(role);
    },
    finish: async () => undefined,
    show: async () => undefined,
    close: async () => undefined,
  };
}

async function openReader(spec: Exclude<ReaderSpec, { backend: 'file' }>): Promise<CardReader> {
  if (spec.backend === 'serial') {
    const { createSerialReader } = await import('../readers/serial/SerialReaderBackend.js');
    return createSerialReader(spec.path, {
      heartbeatMs: 0,
      ...(spec.baudRate !== undefined ? { baudRate: spec.baudRate } : {}),
      reopenDelayMs: spec.reopenDelayMs ?? 200,
    });
  }
  // the PC/SC addon is loaded only when a PC/SC reader is asked for
  const { createPcscCardReader } = await import('../readers/pcsc/PcscCardReader.js');
  return createPcscCardReader({ ...(spec.readerName ? { readerName: spec.readerName } : {}), retry: { initialMs: 100, maxMs: 1000 } });
}

export function describeReaderSpec(spec: ReaderSpec): string {
  if (spec.backend === 'serial') return `serial board on ${spec.path}`;
  if (spec.backend === 'pcsc') return spec.readerName ? `PC/SC reader "${spec.readerName}"` : 'the first PC/SC reader';
  return 'card files';
}

interface RoleState {
  readonly role: CardRole;
  chipUid?: string;
  /** The last VERIFY that succeeded, replayed after the card comes back */
  verify?: Uint8Array;
}

/** Failures that mean the card is not really there, as opposed to a card that answers "no" */
const GONE: ReadonlySet<ErrorName> = new Set(['CARD_REMOVED', 'READER_UNAVAILABLE', 'READER_TIMEOUT', 'TRANSPORT_CLOSED']);

const isOk = (response: Uint8Array): boolean => response.length >= 2 && response[response.length - 2] === 0x90 && response[response.length - 1] === 0x00;

class ReaderSlot implements CardSource {
  private session: CardSession | undefined;
  private holder: RoleState | undefined;
  /** The insertion the holder came in with; undefined until the first card */
  private holderSessionId: number | undefined;
  private readonly listeners = new Set<(event: ReaderEvent) => void>();
  private off: (() => void) | undefined;
  private keepDisplay = false;
  /** One card movement at a time: commands to two roles never race for the slot */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly spec: ReaderSpec,
    private readonly reader: CardReader,
    private readonly io: CliIo,
    private readonly timeoutMs: number,
    /** Says which reader a prompt is for when there are two */
    private readonly prefix = '',
  ) {}

  async start(): Promise<void> {
    let stateDetail: string | undefined;
    this.off = this.reader.onEvent((event) => {
      if (event.type === 'reader-state') stateDetail = event.detail;
      if (event.type === 'card-inserted') this.session = event.session;
      if (event.type === 'card-removed' && this.session?.id === event.sessionId) this.session = undefined;
      for (const listener of [...this.listeners]) listener(event);
    });
    await this.reader.start();
    try {
      await this.waitFor(
        () => this.reader.state === 'ready',
        (e) => e.type === 'reader-state' && e.state === 'ready',
      );
    } catch {
      throw new TallyError('READER_UNAVAILABLE', `${describeReaderSpec(this.spec)}: not ready after ${this.timeoutMs / 1000} s (${this.reader.state}${stateDetail ? `: ${stateDetail}` : ''})`);
    }
    this.session = this.reader.currentSession();
    this.io.err(`${this.prefix}reader: ${describeReaderSpec(this.spec)} ready`);
  }

  private waitFor(already: () => boolean, matches: (event: ReaderEvent) => boolean): Promise<void> {
    if (already()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const listener = (event: ReaderEvent): void => {
        if (!matches(event)) return;
        clearTimeout(timer);
        this.listeners.delete(listener);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(listener);
        reject(new Error('timeout'));
      }, this.timeoutMs);
      this.listeners.add(listener);
    });
  }

  private async waitForRemoval(name: string): Promise<void> {
    if (!this.session) return;
    // taken before the prompt: a quick hand pulls the card while the display is still being updated
    const id = this.session.id;
    this.io.err(`→ ${this.prefix}${prompt({ kind: 'remove', name })}`);
    if (!this.keepDisplay) await this.display({ lines: cliLocale() === 'zh' ? ['请取卡', phrase(name)] : ['Remove', name], led: 'busy' });
    await this.waitFor(
      () => this.session === undefined || this.session.id !== id,
      (e) => e.type === 'card-removed' && e.sessionId === id,
    ).catch(() => {
      throw new TallyError('READER_TIMEOUT', `${name} was not removed within ${this.timeoutMs / 1000} s`);
    });
  }

  private async waitForInsertion(state: RoleState, options: { quiet?: boolean } = {}): Promise<CardSession> {
    const again = state.chipUid !== undefined;
    this.keepDisplay = false;
    if (!options.quiet) {
      this.io.err(`→ ${this.prefix}${prompt({ kind: again ? 'insert-again' : state.role.blank ? 'insert-blank' : 'insert', name: state.role.name })}`);
      const zh = cliLocale() === 'zh';
      await this.display({ lines: [state.role.blank && !again ? (zh ? '请插入空白卡' : 'Insert a blank card for') : zh ? '请插卡' : 'Insert', zh ? phrase(state.role.name) : state.role.name], tone: 'attention', led: 'busy' });
    }
    await this.waitFor(
      () => this.session !== undefined,
      (e) => e.type === 'card-inserted',
    ).catch(() => {
      throw new TallyError('READER_TIMEOUT', `no card was inserted within ${this.timeoutMs / 1000} s (waiting for ${state.role.name})`);
    });
    return this.session!;
  }

  /** Brings the role's card into the slot, prompting the operator as needed */
  private async bringIn(state: RoleState): Promise<CardSession> {
    const present = this.session;
    if (present && this.holder === state && this.holderSessionId === present.id) return present;
    // a card already in the slot when the tool starts is taken for the first card asked for
    const adoptable = present !== undefined && this.holderSessionId === undefined && state.chipUid === undefined;
    if (present && !adoptable) await this.waitForRemoval(this.holder && this.holderSessionId === present.id ? this.holder.role.name : 'the card');
    let prompted = this.session === undefined;
    let session = this.session ?? (await this.waitForInsertion(state));
    let chipUid: string | undefined;
    for (;;) {
      try {
        chipUid = toHex((await new CardClient(session).select()).chipUid);
      } catch (err) {
        // pcscd polls for removals: a card pulled just before the tool started can still be
        // reported present, and fails at its first command; wait for the card really inserted
        if (isTallyError(err) && GONE.has(err.code)) {
          if (this.session?.id === session.id) this.session = undefined;
          session = await this.waitForInsertion(state, { quiet: prompted });
          prompted = true;
          continue;
        }
        chipUid = undefined;
      }
      break;
    }
    if (state.chipUid !== undefined) {
      if (chipUid !== state.chipUid) throw new TallyError('ISSUE_WRONG_CARD', `this is not ${state.role.name} that was in the slot before`);
      if (state.verify && !isOk(await session.transmit(state.verify))) throw new TallyError('PIN_WRONG', `${state.role.name} refused its PIN on re-insertion`);
    } else {
      state.chipUid = chipUid;
    }
    this.holder = state;
    this.holderSessionId = session.id;
    return session;
  }

  async card(role: CardRole): Promise<ApduChannel> {
    const state: RoleState = { role };
    const present = this.queue.then(() => this.bringIn(state));
    this.queue = present.catch(() => undefined);
    await present;
    return this.channelOf(state);
  }

  channel(role: CardRole): ApduChannel {
    return this.channelOf({ role });
  }

  private channelOf(state: RoleState): ApduChannel {
    const role = state.role;
    return {
      transmit: (apdu) => {
        const run = this.queue.then(async () => {
          const session = await this.bringIn(state);
          const response = await session.transmit(apdu);
          if (apdu[1] === INS.VERIFY && apdu.length > 5 && isOk(response)) state.verify = apdu;
          if (apdu[1] === INS.ACTIVATE && isOk(response)) this.io.err(`✓ ${role.name} written`);
          return response;
        });
        this.queue = run.catch(() => undefined);
        return run;
      },
    };
  }

  /** A step's own message (a swipe's outcome) stays on the display until the next card is asked for */
  async show(message: PanelMessage): Promise<void> {
    await this.display(message);
    this.keepDisplay = true;
  }

  /** The board's display shows the prompts too; a display that fails never stops the step */
  private async display(message: PanelMessage): Promise<void> {
    const panel = this.reader as Partial<OperatorPanel>;
    if (typeof panel.show !== 'function') return;
    await panel.show.call(this.reader, message).catch(() => undefined);
  }

  async finish(): Promise<void> {
    try {
      await this.waitForRemoval(this.holder?.role.name ?? 'the card');
    } catch (err) {
      this.io.err(`warning: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.off?.();
    await this.reader.stop();
  }
}
