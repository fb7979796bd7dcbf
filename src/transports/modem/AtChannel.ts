/**
 * The AT command exchange with a GSM modem (3GPP TS 27.007 V.250 framing): one
 * command at a time, answered by information lines and one final result code
 * (OK, ERROR, +CME ERROR: n, +CMS ERROR: n); AT+CMGS's "> " prompt, after which
 * the PDU and Ctrl-Z go; unsolicited lines (+CMTI) to their listener. Echo is
 * tolerated (a line equal to the command is dropped). A modem that answers
 * nothing within the timeout fails the command with MODEM_TIMEOUT; one whose
 * port closed fails it with MODEM_UNAVAILABLE. Timers are injected.
 */
import { TallyError } from '../../errors.js';
import type { Scheduler, TimerHandle } from '../../util/scheduler.js';
import type { ByteTransport } from '../ByteTransport.js';

export interface AtCommandOptions {
  readonly timeoutMs?: number;
  /** Text to send after the "> " prompt, ended with Ctrl-Z (AT+CMGS) */
  readonly afterPrompt?: string;
}

interface Pending {
  readonly command: string;
  readonly afterPrompt?: string;
  readonly lines: string[];
  readonly resolve: (lines: string[]) => void;
  readonly reject: (err: Error) => void;
  timer: TimerHandle;
  prompted: boolean;
}

const UNSOLICITED = /^\+(CMTI|CDSI|CMT|CDS|CREG|CGREG|CUSD|RING)\b|^RING$/;
export const DEFAULT_AT_TIMEOUT_MS = 5000;

export class AtChannel {
  private buffer = '';
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly unsolicited = new Set<(line: string) => void>();
  private closed = false;
  private readonly detach: (() => void)[] = [];

  constructor(
    private readonly transport: ByteTransport,
    private readonly scheduler: Scheduler,
    private readonly defaultTimeoutMs = DEFAULT_AT_TIMEOUT_MS,
  ) {
    this.detach.push(transport.onData((bytes) => this.input(bytes)));
    this.detach.push(
      transport.onClose((err) => {
        this.closed = true;
        this.fail(new TallyError('MODEM_UNAVAILABLE', `${transport.name} closed${err ? `: ${err.message}` : ''}`));
      }),
    );
  }

  get isOpen(): boolean {
    return !this.closed && this.transport.isOpen;
  }

  onUnsolicited(listener: (line: string) => void): () => void {
    this.unsolicited.add(listener);
    return () => this.unsolicited.delete(listener);
  }

  /** Sends one command line (without the CR) and resolves its information lines on OK */
  command(command: string, options: AtCommandOptions = {}): Promise<string[]> {
    const run = () => this.run(command, options);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    for (const d of this.detach) d();
    this.fail(new TallyError('MODEM_UNAVAILABLE', 'channel closed'));
  }

  private run(command: string, options: AtCommandOptions): Promise<string[]> {
    if (this.closed || !this.transport.isOpen) return Promise.reject(new TallyError('MODEM_UNAVAILABLE', `${this.transport.name} is not open`));
    return new Promise<string[]>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
      const pending: Pending = {
        command,
        ...(options.afterPrompt !== undefined ? { afterPrompt: options.afterPrompt } : {}),
        lines: [],
        resolve,
        reject,
        prompted: false,
        timer: this.scheduler.setTimeout(() => {
          if (this.pending !== pending) return;
          this.pending = undefined;
          // a modem left mid-prompt takes ESC to abandon the PDU
          if (pending.afterPrompt !== undefined) void this.transport.write(Uint8Array.of(0x1b)).catch(() => undefined);
          reject(new TallyError('MODEM_TIMEOUT', `${command}: no answer in ${timeoutMs} ms`, { command }));
        }, timeoutMs, { unref: true }),
      };
      this.pending = pending;
      this.buffer = '';
      this.transport.write(new TextEncoder().encode(`${command}\r`)).catch((err: Error) => this.fail(new TallyError('MODEM_UNAVAILABLE', err.message)));
    });
  }

  private fail(err: Error): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.scheduler.clearTimeout(p.timer);
    p.reject(err);
  }

  private input(bytes: Uint8Array): void {
    this.buffer += new TextDecoder('latin1').decode(bytes);
    const p = this.pending;
    if (p && p.afterPrompt !== undefined && !p.prompted && /(^|\n)> ?$/.test(this.buffer)) {
      p.prompted = true;
      this.buffer = '';
      this.transport.write(new TextEncoder().encode(`${p.afterPrompt}\x1a`)).catch((err: Error) => this.fail(new TallyError('MODEM_UNAVAILABLE', err.message)));
      return;
    }
    for (;;) {
      const at = this.buffer.search(/[\r\n]/);
      if (at < 0) break;
      const line = this.buffer.slice(0, at).trim();
      this.buffer = this.buffer.slice(at + 1);
      if (line) this.line(line);
    }
    if (this.buffer.length > 4096) this.buffer = '';
  }

  private line(line: string): void {
    const p = this.pending;
    if (UNSOLICITED.test(line) && !(p && p.command.toUpperCase().startsWith(`AT${line.split(':')[0]}`))) {
      for (const listener of [...this.unsolicited]) listener(line);
      return;
    }
    if (!p) return;
    if (line === p.command || (p.afterPrompt !== undefined && line.endsWith(p.afterPrompt))) return; // echo
    if (line === 'OK') return this.finish(p, () => p.resolve(p.lines));
    if (line === 'ERROR' || line === 'NO CARRIER') return this.finish(p, () => p.reject(new TallyError('MODEM_ERROR', `${p.command}: ${line}`, { command: p.command })));
    const cme = /^\+CME ERROR: ?(.*)$/.exec(line);
    if (cme) return this.finish(p, () => p.reject(new TallyError(/^(10|11|SIM)/i.test(cme[1]!) ? 'MODEM_SIM_NOT_READY' : 'MODEM_ERROR', `${p.command}: ${line}`, { command: p.command, cme: cme[1] })));
    const cms = /^\+CMS ERROR: ?(\d+)/.exec(line);
    if (cms) {
      const code = Number(cms[1]);
      const name = code === 331 || code === 332 ? 'MODEM_NO_NETWORK' : code >= 310 && code <= 318 ? 'MODEM_SIM_NOT_READY' : 'MODEM_SMS_ERROR';
      return this.finish(p, () => p.reject(new TallyError(name, `${p.command}: ${line}`, { command: p.command, cms: code })));
    }
    p.lines.push(line);
  }

  private finish(p: Pending, settle: () => void): void {
    this.pending = undefined;
    this.scheduler.clearTimeout(p.timer);
    settle();
  }
}
