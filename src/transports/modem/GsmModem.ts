/**
 * A GSM modem driven with AT commands in PDU mode: initialise it (echo off,
 * numeric errors, SIM ready, PDU mode, +CMTI on new messages), send binary SMS
 * (AT+CMGS), read what arrived (+CMTI, then AT+CMGR; AT+CMGL at start and
 * after a reconnect) and delete it (AT+CMGD) once the consumer has it. A PDU
 * that does not decode is deleted and reported as such, never retried for ever.
 */
import { encodeSubmitPdu, parseDeliverPdu, type SmsDeliver } from '../../codecs/sms/pdu.js';
import { isTallyError, TallyError } from '../../errors.js';
import type { Scheduler } from '../../util/scheduler.js';
import type { ByteTransport } from '../ByteTransport.js';
import { AtChannel } from './AtChannel.js';

export interface ReceivedSms {
  readonly index: number;
  /** The decoded PDU, or the error that it raised (BAD_SMS_PDU) */
  readonly sms?: SmsDeliver;
  readonly error?: TallyError;
  readonly pdu: string;
}

export interface ModemStatus {
  readonly simReady: boolean;
  readonly registered: boolean;
  /** AT+CSQ rssi, 0..31, 99 unknown */
  readonly rssi: number;
}

/** What sends an SMS: the GSM modem, or a test double */
export interface SmsSender {
  /** Resolves the message reference; rejects with a MODEM_* TallyError */
  send(destination: string, octets: Uint8Array): Promise<number>;
}

export class GsmModem implements SmsSender {
  readonly at: AtChannel;
  private readonly listeners = new Set<(sms: ReceivedSms) => void>();
  private reading: Promise<void> = Promise.resolve();

  constructor(
    transport: ByteTransport,
    scheduler: Scheduler,
    private readonly options: { timeoutMs?: number; sendTimeoutMs?: number } = {},
  ) {
    this.at = new AtChannel(transport, scheduler, options.timeoutMs);
    this.at.onUnsolicited((line) => {
      const cmti = /^\+CMTI: ?"?(\w+)"?,(\d+)/.exec(line);
      if (cmti) this.readLater(() => this.readIndex(Number(cmti[2])));
    });
  }

  /** Resolves once the modem is ready to send and receive; rejects with the reason it is not */
  async initialise(): Promise<void> {
    await this.at.command('AT');
    await this.at.command('ATE0');
    await this.at.command('AT+CMEE=1');
    const pin = await this.at.command('AT+CPIN?');
    if (!pin.some((l) => /READY/.test(l))) throw new TallyError('MODEM_SIM_NOT_READY', pin.join(' ') || 'no answer to AT+CPIN?');
    await this.at.command('AT+CMGF=0');
    await this.at.command('AT+CPMS="SM","SM","SM"').catch(() => undefined);
    await this.at.command('AT+CNMI=2,1,0,0,0');
  }

  async status(): Promise<ModemStatus> {
    const pin = await this.at.command('AT+CPIN?').catch((err: unknown) => (isTallyError(err, 'MODEM_SIM_NOT_READY') ? ['+CPIN: ABSENT'] : Promise.reject(err)));
    const creg = await this.at.command('AT+CREG?');
    const csq = await this.at.command('AT+CSQ');
    const reg = /\+CREG: ?\d+,(\d+)/.exec(creg.join(' '));
    const rssi = /\+CSQ: ?(\d+)/.exec(csq.join(' '));
    return { simReady: pin.some((l) => /READY/.test(l)), registered: reg?.[1] === '1' || reg?.[1] === '5', rssi: rssi ? Number(rssi[1]) : 99 };
  }

  async send(destination: string, octets: Uint8Array): Promise<number> {
    const pdu = encodeSubmitPdu({ destination, userData: octets });
    const lines = await this.at.command(`AT+CMGS=${pdu.tpduLength}`, { afterPrompt: pdu.hex, timeoutMs: this.options.sendTimeoutMs ?? 60_000 });
    const mr = /\+CMGS: ?(\d+)/.exec(lines.join(' '));
    if (!mr) throw new TallyError('MODEM_SMS_ERROR', `AT+CMGS answered OK without +CMGS: ${lines.join(' ')}`);
    return Number(mr[1]);
  }

  /** Each message that arrives (or was waiting at start), once; deleted from the SIM after the listener ran */
  onMessage(listener: (sms: ReceivedSms) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads every stored message (at start, after a reconnect, or as a poll) */
  readAll(): Promise<void> {
    return this.readLater(async () => {
      const lines = await this.at.command('AT+CMGL=4');
      for (let i = 0; i < lines.length; i++) {
        const head = /^\+CMGL: ?(\d+),/.exec(lines[i]!);
        if (!head) continue;
        const pdu = lines[i + 1] ?? '';
        i++;
        await this.deliver(Number(head[1]), pdu);
      }
    });
  }

  private readLater(job: () => Promise<void>): Promise<void> {
    const next = this.reading.then(job, job);
    this.reading = next.catch(() => undefined);
    return next;
  }

  private async readIndex(index: number): Promise<void> {
    const lines = await this.at.command(`AT+CMGR=${index}`);
    if (!lines.length) return;
    await this.deliver(index, lines[1] ?? '');
  }

  private async deliver(index: number, pdu: string): Promise<void> {
    let received: ReceivedSms;
    try {
      received = { index, pdu, sms: parseDeliverPdu(pdu) };
    } catch (err) {
      received = { index, pdu, error: isTallyError(err) ? err : new TallyError('BAD_SMS_PDU', String(err)) };
    }
    for (const listener of [...this.listeners]) listener(received);
    await this.at.command(`AT+CMGD=${index}`);
  }

  close(): void {
    this.at.close();
  }
}
