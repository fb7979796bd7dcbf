/**
 * A terminal driven through the real serial protocol: the daemon and the
 * serial reader backend on one side of a byte link, the simulated
 * microcontroller (with its card slot, display, buzzer, LEDs and relay) on the
 * other. The link is an in-memory pair by default, so the demo needs nothing
 * installed; tests can pass any ByteTransport pair (a socat pty pair).
 */
import { TallyError } from '../errors.js';
import { toHex } from '../codecs/bytes.js';
import type { SmartCard } from '../card/ApduChannel.js';
import { TerminalDaemon, type SwipeTiming } from '../daemon/TerminalDaemon.js';
import type { Locale } from '../errors.js';
import type { CardSession } from '../readers/CardReader.js';
import { createSerialReaderOver, type SerialReaderBackend } from '../readers/serial/SerialReaderBackend.js';
import { SimulatedReaderFirmware } from '../sim/SimulatedReaderFirmware.js';
import { Terminal, type ProvisionRequest, type SwipeOutcome } from '../terminal/Terminal.js';
import type { ByteTransport } from '../transports/ByteTransport.js';
import { createInMemoryPair } from '../transports/InMemoryDuplex.js';
import type { Logger } from '../util/logger.js';
import type { SerialScanner } from '../readers/scanner/SerialScanner.js';

export interface SerialRigOptions {
  readonly dataDir: string;
  readonly locale?: Locale;
  readonly log?: Logger;
  /** One line per frame, for --trace */
  readonly trace?: (line: string) => void;
  readonly device?: { startDelayMs?: number; runMs?: number };
  /** Both ends of the serial line; an in-memory pair when absent */
  readonly link?: { daemonSide: () => Promise<ByteTransport>; firmwareSide: ByteTransport };
  /** A QR scanner in serial mode beside the board: its voucher scans go to the daemon */
  readonly scanner?: SerialScanner;
  /** The device class of the simulated device, for vouchers scoped to one */
  readonly voucherDeviceClass?: string;
  /** The clinic checks identity: a voucher needs its holder's personal QR code too (voucher.requireIdentity) */
  readonly voucherIdentityRequired?: boolean;
}

export class SerialRig {
  readonly firmware: SimulatedReaderFirmware;
  readonly backend: SerialReaderBackend;
  readonly terminal: Terminal;
  readonly daemon: TerminalDaemon;

  private constructor(options: SerialRigOptions) {
    const pair = options.link ? undefined : createInMemoryPair({ a: 'daemon', b: 'mcu' });
    const trace = options.trace;
    this.firmware = new SimulatedReaderFirmware({ device: { startDelayMs: options.device?.startDelayMs ?? 2, runMs: options.device?.runMs ?? 5 } });
    this.firmware.attach(options.link?.firmwareSide ?? pair!.b);
    this.firmware.powerOn();
    this.backend = createSerialReaderOver(options.link?.daemonSide ?? (async () => pair!.a), {
      heartbeatMs: 0,
      ...(trace ? { trace: (direction, raw, summary) => trace(`${direction === 'out' ? 'daemon → mcu' : 'mcu → daemon'}  ${toHex(raw).replace(/(..)/g, '$1 ').trim()}  (${summary})`) } : {}),
      ...(options.log ? { logger: options.log } : {}),
    });
    this.terminal = Terminal.open({
      dataDir: options.dataDir,
      device: this.backend.device,
      ...(options.voucherDeviceClass ? { voucherDeviceClass: options.voucherDeviceClass } : {}),
      ...(options.voucherIdentityRequired ? { voucherIdentityRequired: true } : {}),
      ...(options.locale ? { locale: options.locale } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    this.daemon = new TerminalDaemon({
      terminal: this.terminal,
      reader: this.backend,
      panel: this.backend,
      ...(options.scanner ? { scanner: options.scanner } : {}),
      ...(options.locale ? { locale: options.locale } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
  }

  /**
   * Starts the serial link; `factory` runs before the daemon takes over the
   * reader (provisioning happens there, card by card), then the daemon starts.
   */
  static async start(options: SerialRigOptions, factory?: (rig: SerialRig) => Promise<void>): Promise<SerialRig> {
    const rig = new SerialRig(options);
    await rig.backend.start();
    if (factory) await factory(rig);
    await rig.daemon.start();
    return rig;
  }

  /** Factory provisioning through the serial reader: the mother card in the terminal's own slot */
  async provision(mother: SmartCard, request: ProvisionRequest): ReturnType<Terminal['provision']> {
    const session = await this.insertForSession(mother);
    try {
      return await this.terminal.provision(session, request);
    } finally {
      this.firmware.removeCard();
    }
  }

  /** Inserts a card, waits for the daemon's decision and for the device session to end, removes the card */
  async swipe(card: SmartCard): Promise<SwipeOutcome> {
    const decided = new Promise<SwipeTiming>((resolve) => {
      const off = this.daemon.onSwipe((timing) => {
        off();
        resolve(timing);
      });
    });
    this.firmware.insertCard(card);
    const timing = await decided;
    this.firmware.removeCard();
    await this.deviceIdle();
    return timing.outcome;
  }

  /** Resolves when no use is waiting for its device session to end */
  async deviceIdle(timeoutMs = 5000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.terminal.ledger.openUses().length > 0) {
      if (Date.now() > until) throw new TallyError('INTERNAL', 'device session did not end');
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  private insertForSession(card: SmartCard): Promise<CardSession> {
    return new Promise((resolve) => {
      const off = this.backend.onEvent((event) => {
        if (event.type === 'card-inserted') {
          off();
          resolve(event.session);
        }
      });
      this.firmware.insertCard(card);
    });
  }

  async close(): Promise<void> {
    await this.daemon.stop();
    this.terminal.close();
  }
}
