/**
 * A simulated GSM modem that answers AT commands on a serial line as a real
 * one does (3GPP TS 27.007, TS 27.005 in PDU mode): echo (ATE0/ATE1), the
 * identification a gateway asks for, AT+CPIN?, AT+CSQ, AT+CREG?, AT+CMGF=0,
 * AT+CPMS, AT+CNMI with +CMTI notifications, AT+CMGS with the "> " prompt and
 * Ctrl-Z (ESC cancels), AT+CMGR, AT+CMGL and AT+CMGD over a SIM memory of
 * `capacity` slots; errors as +CMS ERROR / +CME ERROR codes. Faults: no SIM,
 * SIM PIN, no network, +CMS ERROR on the next sends, and silence. The modem
 * hands what it sends to a SimulatedSmsNetwork and stores what the network
 * delivers. It speaks to gammu (the server side's gateway) and to our daemon.
 */
import { CodecError } from '../../errors.js';
import { parseSubmitPdu, smscOctets, type SmsSubmit } from '../../codecs/sms/pdu.js';
import type { ByteTransport } from '../../transports/ByteTransport.js';
import type { SimulatedSmsNetwork, SmsEndpoint } from './SimulatedSmsNetwork.js';
import { SIMULATED_SMSC } from './SimulatedSmsNetwork.js';

export type SimState = 'ready' | 'absent' | 'pin';

export interface ModemFaults {
  sim: SimState;
  registered: boolean;
  /** Signal quality 0..31 (AT+CSQ), 99 unknown */
  rssi: number;
  /** Answer nothing at all (a hung modem) */
  silent: boolean;
  /** The next N AT+CMGS answer +CMS ERROR: 500 */
  failSends: number;
}

interface Slot {
  status: 0 | 1;
  pdu: string;
}

const CTRL_Z = 0x1a;
const ESC = 0x1b;

/** +CMS ERROR codes (TS 27.005 §3.2.5) the simulator uses */
export const CmsError = {
  UNKNOWN: 500,
  INVALID_PDU_PARAMETER: 304,
  OPERATION_NOT_ALLOWED: 302,
  SIM_NOT_INSERTED: 310,
  SIM_PIN_REQUIRED: 311,
  INVALID_INDEX: 321,
  MEMORY_FULL: 322,
  NO_NETWORK: 331,
} as const;

export interface ModemOptions {
  readonly number: string;
  readonly network?: SimulatedSmsNetwork;
  readonly capacity?: number;
  readonly imei?: string;
  readonly faults?: Partial<ModemFaults>;
  /** Every line in and out, for --trace */
  readonly trace?: (direction: 'in' | 'out', text: string) => void;
}

export class SimulatedModem implements SmsEndpoint {
  readonly number: string;
  readonly faults: ModemFaults;
  readonly stats = { commands: 0, sent: 0, received: 0, errors: 0 };
  private readonly capacity: number;
  private readonly slots: (Slot | undefined)[];
  private transport: ByteTransport | undefined;
  private detachers: (() => void)[] = [];
  private buffer = '';
  private echo = true;
  private cmee = 0;
  private cnmiMt = 0;
  private prompt: { length: number } | undefined;
  private messageReference = 0;
  private readonly sentListeners = new Set<(submit: SmsSubmit) => void>();

  constructor(private readonly options: ModemOptions) {
    this.number = options.number;
    this.capacity = options.capacity ?? 30;
    this.slots = new Array<Slot | undefined>(this.capacity).fill(undefined);
    this.faults = { sim: 'ready', registered: true, rssi: 20, silent: false, failSends: 0, ...options.faults };
    options.network?.attach(this);
  }

  attach(transport: ByteTransport): void {
    this.detach();
    this.transport = transport;
    this.buffer = '';
    this.prompt = undefined;
    this.detachers.push(transport.onData((bytes) => this.input(bytes)));
    this.detachers.push(transport.onClose(() => this.detach()));
  }

  detach(): void {
    for (const d of this.detachers) d();
    this.detachers = [];
    this.transport = undefined;
  }

  /** Messages in memory, by slot (1-based index) */
  stored(): { index: number; status: number; pdu: string }[] {
    return this.slots.flatMap((s, i) => (s ? [{ index: i + 1, status: s.status, pdu: s.pdu }] : []));
  }

  onSent(listener: (submit: SmsSubmit) => void): () => void {
    this.sentListeners.add(listener);
    return () => this.sentListeners.delete(listener);
  }

  /** The network offers a message; false while it cannot be stored (no SIM, no network, memory full) */
  accept(deliverPdu: string): boolean {
    if (this.faults.sim !== 'ready' || !this.faults.registered) return false;
    const free = this.slots.findIndex((s) => s === undefined);
    if (free < 0) return false;
    this.slots[free] = { status: 0, pdu: deliverPdu };
    this.stats.received++;
    if (this.cnmiMt === 1 && this.transport && !this.faults.silent) this.write(`\r\n+CMTI: "SM",${free + 1}\r\n`);
    return true;
  }

  private input(bytes: Uint8Array): void {
    if (this.faults.silent) return;
    if (this.echo && this.transport) void this.transport.write(bytes).catch(() => undefined);
    for (const byte of bytes) {
      if (this.prompt) {
        if (byte === CTRL_Z) this.finishPdu();
        else if (byte === ESC) {
          this.prompt = undefined;
          this.buffer = '';
          this.final('OK');
        } else if (byte !== 0x0d && byte !== 0x0a) this.buffer += String.fromCharCode(byte);
        continue;
      }
      if (byte === 0x0d || byte === 0x0a) {
        const line = this.buffer.trim();
        this.buffer = '';
        if (line) this.command(line);
      } else if (this.buffer.length < 600) this.buffer += String.fromCharCode(byte);
    }
  }

  private write(text: string): void {
    this.options.trace?.('out', text.trim());
    void this.transport?.write(new TextEncoder().encode(text)).catch(() => undefined);
  }

  private info(...lines: string[]): void {
    for (const line of lines) this.write(`\r\n${line}\r\n`);
  }

  private final(result: string): void {
    if (result !== 'OK') this.stats.errors++;
    this.write(`\r\n${result}\r\n`);
  }

  private cms(code: number): void {
    this.final(`+CMS ERROR: ${code}`);
  }

  private cme(code: number, text: string): void {
    this.final(this.cmee === 0 ? 'ERROR' : this.cmee === 1 ? `+CME ERROR: ${code}` : `+CME ERROR: ${text}`);
  }

  /** The SMS commands need a SIM: the +CMS ERROR to answer when there is none ready */
  private simProblem(): number | undefined {
    if (this.faults.sim === 'absent') return CmsError.SIM_NOT_INSERTED;
    if (this.faults.sim === 'pin') return CmsError.SIM_PIN_REQUIRED;
    return undefined;
  }

  private used(): number {
    return this.slots.filter((s) => s !== undefined).length;
  }

  private command(line: string): void {
    this.options.trace?.('in', line);
    this.stats.commands++;
    const upper = line.toUpperCase();
    if (!upper.startsWith('AT')) {
      this.final('ERROR');
      return;
    }
    const body = line.slice(2);
    const cmd = upper.slice(2);
    // basic commands, possibly several: ATE0V1, ATZ, AT&F
    if (/^([EVQ][01]?|Z0?|&F0?|&[CDW]\d?|S\d+=\d+|X\d)*$/.test(cmd)) {
      const e = /E([01]?)/.exec(cmd);
      if (e) this.echo = e[1] !== '0';
      if (/Z|&F/.test(cmd)) {
        this.echo = true;
        this.cmee = 0;
        this.cnmiMt = 0;
      }
      this.final('OK');
      return;
    }
    if (cmd === 'I' || cmd === 'I0') return this.reply(['tallystick simulated GSM modem']);
    const ext = /^\+([A-Z]+)(=\?|\?|=(.*))?$/.exec(cmd);
    if (!ext) {
      this.final('ERROR');
      return;
    }
    const name = ext[1]!;
    const mode = ext[2] === '=?' ? 'test' : ext[2] === '?' ? 'read' : ext[2] ? 'set' : 'exec';
    const arg = ext[3] !== undefined ? body.slice(body.indexOf('=') + 1) : '';
    this.extended(name, mode, arg);
  }

  private reply(lines: string[]): void {
    this.info(...lines);
    this.final('OK');
  }

  private extended(name: string, mode: 'test' | 'read' | 'set' | 'exec', arg: string): void {
    const sim = this.simProblem();
    switch (name) {
      case 'CMEE':
        if (mode === 'set') this.cmee = Number(arg) || 0;
        return mode === 'read' ? this.reply([`+CMEE: ${this.cmee}`]) : mode === 'test' ? this.reply(['+CMEE: (0-2)']) : this.final('OK');
      case 'CGMI':
      case 'GMI':
        return this.reply(['tallystick']);
      case 'CGMM':
      case 'GMM':
        return this.reply(['SIM-MODEM-1']);
      case 'CGMR':
      case 'GMR':
        return this.reply(['1.0.0']);
      case 'CGSN':
      case 'GSN':
        return this.reply([this.options.imei ?? '356938035643809']);
      case 'CIMI':
        if (sim) return this.cme(10, 'SIM not inserted');
        return this.reply(['460001234567890']);
      case 'CPIN':
        if (mode === 'test') return this.final('OK');
        if (this.faults.sim === 'absent') return this.cme(10, 'SIM not inserted');
        return this.reply([this.faults.sim === 'pin' ? '+CPIN: SIM PIN' : '+CPIN: READY']);
      case 'CSQ':
        if (mode === 'test') return this.reply(['+CSQ: (0-31,99),(0-7,99)']);
        return this.reply([`+CSQ: ${this.faults.registered && !sim ? this.faults.rssi : 99},99`]);
      case 'CREG':
      case 'CGREG':
        if (mode === 'read') return this.reply([`+${name}: 0,${this.faults.registered && !sim ? 1 : 0}`]);
        return mode === 'test' ? this.reply([`+${name}: (0-2)`]) : this.final('OK');
      case 'COPS':
        if (mode === 'read') return this.reply([this.faults.registered && !sim ? '+COPS: 0,0,"SIM NET"' : '+COPS: 0']);
        return mode === 'test' ? this.reply(['+COPS: (2,"SIM NET","SIMNET","46099"),,(0-4),(0-2)']) : this.final('OK');
      case 'CBC':
        return this.reply(['+CBC: 0,100']);
      case 'CFUN':
        return mode === 'read' ? this.reply(['+CFUN: 1']) : this.final('OK');
      case 'CSCS':
        if (mode === 'read') return this.reply(['+CSCS: "GSM"']);
        if (mode === 'test') return this.reply(['+CSCS: ("GSM","IRA","UCS2")']);
        return this.final('OK');
      case 'CMGF':
        if (mode === 'read') return this.reply(['+CMGF: 0']);
        if (mode === 'test') return this.reply(['+CMGF: (0)']);
        // PDU mode only, as many data modems
        return arg.trim() === '0' ? this.final('OK') : this.cms(CmsError.OPERATION_NOT_ALLOWED);
      case 'CSCA':
        if (sim) return this.cms(sim);
        return mode === 'read' ? this.reply([`+CSCA: "${SIMULATED_SMSC}",145`]) : this.final('OK');
      case 'CSMS':
        return mode === 'read' ? this.reply(['+CSMS: 0,1,1,1']) : mode === 'test' ? this.reply(['+CSMS: (0)']) : this.reply(['+CSMS: 1,1,1']);
      case 'CPMS': {
        if (mode === 'test') return this.reply(['+CPMS: ("SM"),("SM"),("SM")']);
        if (sim) return this.cms(sim);
        const u = this.used();
        const c = this.capacity;
        if (mode === 'read') return this.reply([`+CPMS: "SM",${u},${c},"SM",${u},${c},"SM",${u},${c}`]);
        const memories = arg.split(',').map((m) => m.trim().replace(/"/g, '').toUpperCase());
        if (memories.some((m) => m !== 'SM')) return this.cms(CmsError.OPERATION_NOT_ALLOWED);
        return this.reply([`+CPMS: ${u},${c},${u},${c},${u},${c}`]);
      }
      case 'CNMI':
        if (mode === 'test') return this.reply(['+CNMI: (0-2),(0-1),(0),(0),(0,1)']);
        if (mode === 'read') return this.reply([`+CNMI: 2,${this.cnmiMt},0,0,0`]);
        this.cnmiMt = Number(arg.split(',')[1] ?? 0) === 1 ? 1 : 0;
        return this.final('OK');
      case 'CMGS': {
        if (mode === 'test') return this.final('OK');
        if (sim) return this.cms(sim);
        const length = Number(arg.trim());
        if (!Number.isInteger(length) || length < 1 || length > 176) return this.cms(CmsError.INVALID_PDU_PARAMETER);
        this.prompt = { length };
        this.buffer = '';
        this.write('\r\n> ');
        return;
      }
      case 'CMGR': {
        if (sim) return this.cms(sim);
        const index = Number(arg.trim());
        const slot = this.slotAt(index);
        if (slot === null) return this.cms(CmsError.INVALID_INDEX);
        if (!slot) return this.final('OK');
        const status = slot.status;
        slot.status = 1;
        return this.reply([`+CMGR: ${status},,${this.tpduLength(slot.pdu)}`, slot.pdu]);
      }
      case 'CMGL': {
        if (mode === 'test') return this.reply(['+CMGL: (0-4)']);
        if (sim) return this.cms(sim);
        const stat = arg.trim() === '' ? 0 : Number(arg.trim());
        if (!Number.isInteger(stat) || stat < 0 || stat > 4) return this.cms(CmsError.OPERATION_NOT_ALLOWED);
        const lines: string[] = [];
        this.slots.forEach((slot, i) => {
          if (!slot || (stat !== 4 && slot.status !== stat)) return;
          lines.push(`+CMGL: ${i + 1},${slot.status},,${this.tpduLength(slot.pdu)}`, slot.pdu);
          slot.status = 1;
        });
        return this.reply(lines);
      }
      case 'CMGD': {
        if (mode === 'test') return this.reply([`+CMGD: (1-${this.capacity}),(0-4)`]);
        if (sim) return this.cms(sim);
        const [indexText, flagText] = arg.split(',');
        const flag = Number(flagText ?? 0);
        if (flag === 4) this.slots.fill(undefined);
        else if (flag > 0) this.slots.forEach((s, i) => s?.status === 1 && (this.slots[i] = undefined));
        else {
          const index = Number(indexText?.trim());
          if (this.slotAt(index) === null) return this.cms(CmsError.INVALID_INDEX);
          this.slots[index - 1] = undefined;
        }
        return this.final('OK');
      }
      default:
        return this.final('ERROR');
    }
  }

  /** The slot at a 1-based index: null when out of range, undefined when empty */
  private slotAt(index: number): Slot | undefined | null {
    if (!Number.isInteger(index) || index < 1 || index > this.capacity) return null;
    return this.slots[index - 1];
  }

  private tpduLength(pdu: string): number {
    return pdu.length / 2 - smscOctets(pdu);
  }

  private finishPdu(): void {
    const hex = this.buffer.trim();
    const { length } = this.prompt!;
    this.prompt = undefined;
    this.buffer = '';
    let submit: SmsSubmit;
    try {
      submit = parseSubmitPdu(hex);
      if (this.tpduLength(hex) !== length) throw new CodecError('BAD_SMS_PDU', 'length');
    } catch {
      return this.cms(CmsError.INVALID_PDU_PARAMETER);
    }
    const sim = this.simProblem();
    if (sim) return this.cms(sim);
    if (!this.faults.registered) return this.cms(CmsError.NO_NETWORK);
    if (this.faults.failSends > 0) {
      this.faults.failSends--;
      return this.cms(CmsError.UNKNOWN);
    }
    this.messageReference = (this.messageReference + 1) & 0xff;
    this.stats.sent++;
    this.options.network?.submit(this.number, submit);
    for (const listener of [...this.sentListeners]) listener(submit);
    this.reply([`+CMGS: ${this.messageReference}`]);
  }
}
