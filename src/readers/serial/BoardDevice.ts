/**
 * The relay side of the board (DeviceControl): closing the relay for one use,
 * with the ledger head on a board that witnesses it (serial-protocol.md §6.5),
 * the board's own report of its session (§6.6), and the device-session events,
 * each ACKed only once the terminal has recorded it (§5).
 */
import { HEAD_HASH_LENGTH, HeadStatus } from '../../codecs/firmware/head.js';
import type { EventMessage } from '../../codecs/firmware/messages.js';
import { FaultCode, SessionState } from '../../codecs/firmware/relay.js';
import { isTallyError, TallyError } from '../../errors.js';
import type { Logger } from '../../util/logger.js';
import type { BoardSession, BoardWitness, DeviceControl, DeviceEvent, DeviceEventAnswer, LedgerHead } from '../CardReader.js';
import { askListeners, type EventAnswer } from '../eventAnswers.js';
import type { FirmwareLink } from './FirmwareLink.js';

export class BoardDevice implements DeviceControl {
  /**
   * A device listener answers like a link's event listener (readers/eventAnswers.ts):
   * the terminal returns whether the ledger has recorded the event, and the
   * board's frame is ACKed only then (serial-protocol.md §5).
   */
  private readonly listeners = new Set<(event: DeviceEvent) => DeviceEventAnswer>();
  private activeUse: number | undefined;
  /** What the board witnesses of the ledger, learnt at every (re)sync and from each RELAY_ENABLE_HEAD */
  private boardWitness: BoardWitness = { kind: 'unknown' };
  /** The board's answer to GET_SESSION at the last (re)sync (before the reader is ready) */
  private boardSession: BoardSession | undefined;
  private sessionReports = 0;
  /**
   * Device events already reported AND recorded: the board resends an event until it is
   * acknowledged, even across a reconnect; one not recorded is reported again when it comes back
   */
  private readonly reported: string[] = [];
  /** Device events handed to the listeners whose answer is not in yet, by key */
  private readonly reporting = new Map<string, Promise<boolean>>();

  constructor(
    /** The open link, or READER_UNAVAILABLE */
    private readonly requireLink: () => FirmwareLink,
    private readonly logger: Logger,
  ) {}

  async enable(useSeq: number, maxMs: number, head?: LedgerHead): Promise<void> {
    const link = this.requireLink();
    this.forget(useSeq);
    if (this.boardWitness.kind !== 'head') {
      // a protocol 1 board keeps no head (serial-protocol.md §6.5)
      await link.request('relay-enable', { useSeq, maxMs });
      this.activeUse = useSeq;
      return;
    }
    if (!head) throw new TallyError('INTERNAL', 'a board with the head witness needs the ledger head to close the relay');
    const proposed = { seq: head.seq, hash: head.hash.slice(0, HEAD_HASH_LENGTH) };
    const result = await link.request('relay-enable-head', { useSeq, maxMs, head: proposed });
    this.boardWitness = { kind: 'head', seq: result.held.seq, hashPrefix: result.held.hash };
    if (result.status !== HeadStatus.CLOSED) {
      this.logger.error({ useSeq, sent: head.seq, held: result.held.seq }, 'relay board refused the head: the ledger is behind the board');
      throw new TallyError('BOARD_HEAD_REFUSED', `board holds seq ${result.held.seq}, refused seq ${head.seq}`, {
        held: { seq: result.held.seq, hashPrefix: Buffer.from(result.held.hash).toString('hex') },
        sent: head.seq,
      });
    }
    this.activeUse = useSeq;
  }

  async disable(): Promise<void> {
    await this.requireLink().request('relay-disable', {});
  }

  /** What the board witnesses of the ledger (unknown until it answered GET_INFO and GET_HEAD) */
  witness(): BoardWitness {
    return this.boardWitness;
  }

  session(): BoardSession | undefined {
    return this.boardSession;
  }

  /**
   * A listener may return whether it recorded the event (false, or a promise
   * of false: not recorded); the board's frame is ACKed only once every
   * listener has, so an event not recorded comes again, also after a restart.
   */
  onEvent(listener: (event: DeviceEvent) => DeviceEventAnswer): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** At each (re)sync: a board with the head witness says its head and its session; an older one neither */
  async learn(link: FirmwareLink, protocolVersion: number, witnessesHead: boolean): Promise<void> {
    if (!witnessesHead) {
      this.boardWitness = { kind: 'none', protocolVersion };
      this.boardSession = undefined;
      return;
    }
    const held = await link.request('get-head', {});
    this.boardWitness = { kind: 'head', seq: held.seq, hashPrefix: held.hash };
    this.boardSession = await this.askSession(link);
  }

  /** The board restarted with its relay open: a use in progress is a fault that is ours to report */
  boardRestarted(): void {
    const use = this.activeUse;
    this.activeUse = undefined;
    // the board has forgotten the use (the terminal retries the fault until recorded)
    if (use !== undefined) void this.report(`ended ${use}`, { type: 'fault', useSeq: use, detail: 'reader board restarted during the use' });
  }

  /** A device-session event frame: answered once recorded; other frames are not the device's (undefined) */
  onBoardEvent(event: EventMessage): EventAnswer | undefined {
    switch (event.name) {
      case 'device-started':
        return this.report(`started ${event.body.useSeq}`, { type: 'started', useSeq: event.body.useSeq });
      case 'device-finished':
        if (this.activeUse === event.body.useSeq) this.activeUse = undefined;
        return this.report(`ended ${event.body.useSeq}`, { type: 'finished', useSeq: event.body.useSeq });
      case 'device-fault':
        if (this.activeUse === event.body.useSeq) this.activeUse = undefined;
        return this.report(`ended ${event.body.useSeq}`, { type: 'fault', useSeq: event.body.useSeq, detail: `${faultName(event.body.code)}${event.body.detail ? `: ${event.body.detail}` : ''}` });
      default:
        return undefined;
    }
  }

  /** For the reader's log line */
  witnessLog(): Record<string, unknown> {
    const w = this.boardWitness;
    return w.kind === 'head' ? { boardHeadSeq: w.seq, boardHeadHash: Buffer.from(w.hashPrefix).toString('hex') } : { boardHead: w.kind };
  }

  /**
   * GET_SESSION (serial-protocol.md §6.6). The board answers from its one queue, after
   * any device event still waiting for our ACK, so an end it had to report is recorded
   * before the answer says idle. A board that does not know the command (NAK) says nothing.
   */
  private async askSession(link: FirmwareLink): Promise<BoardSession | undefined> {
    let answer;
    try {
      answer = await link.request('get-session', {});
    } catch (err) {
      if (isTallyError(err, 'FRAME_REJECTED')) return undefined;
      throw err;
    }
    const id = ++this.sessionReports;
    if (answer.state === SessionState.IDLE) return { id, state: 'idle' };
    return { id, state: answer.state === SessionState.RUNNING ? 'running' : 'enabled', useSeq: answer.useSeq, elapsedMs: answer.elapsedMs };
  }

  /**
   * Reports a device session event once it is recorded: an event already
   * recorded is taken again at once (our ACK was lost), one being recorded
   * waits for that answer, and one a listener could not record is forgotten,
   * so its resend is reported again.
   */
  private report(key: string, event: DeviceEvent): boolean | Promise<boolean> {
    if (this.reported.includes(key)) return true;
    const inFlight = this.reporting.get(key);
    if (inFlight) return inFlight;
    const settle = (recorded: boolean): boolean => {
      this.reporting.delete(key);
      if (recorded) {
        this.reported.push(key);
        if (this.reported.length > 64) this.reported.shift();
      } else {
        this.logger.warn({ event }, 'device event not recorded: not acknowledged, the board sends it again');
      }
      return recorded;
    };
    const answer = askListeners(this.listeners, event, (err) => this.logger.error({ err: String(err) }, 'device listener failed'));
    if (typeof answer === 'boolean') return settle(answer);
    const pending = answer.then(settle);
    this.reporting.set(key, pending);
    return pending;
  }

  private forget(useSeq: number): void {
    for (const key of [`started ${useSeq}`, `ended ${useSeq}`]) {
      const at = this.reported.indexOf(key);
      if (at >= 0) this.reported.splice(at, 1);
    }
  }
}

function faultName(code: number): string {
  switch (code) {
    case FaultCode.START_FAILED:
      return 'device failed to start';
    case FaultCode.RUN_FAULT:
      return 'device fault';
    case FaultCode.RELAY_FAULT:
      return 'relay fault';
    default:
      return `fault ${code}`;
  }
}
