/**
 * The virtual card against a stand-in for vpcd (a Unix-socket server speaking
 * vpcd's side of the protocol): what the card answers to each control code and
 * APDU, how it leaves and comes back. No pcscd needed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseResponseApdu } from '../../src/codecs/apdu.js';
import { parseFci, selectApplet } from '../../src/codecs/applet.js';
import { toHex } from '../../src/codecs/bytes.js';
import { isTallyError } from '../../src/errors.js';
import { SIMULATED_CARD_ATR, SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { VirtualCard } from '../../src/sim/VirtualCard.js';
import { encodeVpcdMessage, VpcdControl, VpcdMessageParser } from '../../src/sim/VirtualCardProtocol.js';

/** vpcd's side: sends controls and APDUs, reads length-prefixed answers */
class FakeVpcd {
  private server: Server;
  private socket: Socket | undefined;
  private parser = new VpcdMessageParser();
  private waiters: ((bytes: Uint8Array) => void)[] = [];
  private answers: Uint8Array[] = [];
  connections = 0;
  closes = 0;

  constructor(readonly path: string) {
    this.server = createServer((socket) => {
      this.connections++;
      this.socket = socket;
      this.parser = new VpcdMessageParser();
      socket.on('data', (chunk: Buffer) => {
        for (const m of this.parser.push(chunk)) {
          const bytes = m.type === 'apdu' ? m.apdu : Uint8Array.of(m.code);
          const waiter = this.waiters.shift();
          if (waiter) waiter(bytes);
          else this.answers.push(bytes);
        }
      });
      socket.on('close', () => {
        this.closes++;
        if (this.socket === socket) this.socket = undefined;
      });
      // vpcd's first word to a new card: its ATR, please
      socket.write(encodeVpcdMessage(Uint8Array.of(VpcdControl.GET_ATR)));
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  send(payload: Uint8Array): void {
    this.socket?.write(encodeVpcdMessage(payload));
  }

  next(timeoutMs = 2000): Promise<Uint8Array> {
    const ready = this.answers.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer from the card')), timeoutMs);
      this.waiters.push((bytes) => {
        clearTimeout(timer);
        resolve(bytes);
      });
    });
  }

  dropConnection(): void {
    this.socket?.destroy();
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const until = async (condition: () => boolean, what: string): Promise<void> => {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 3000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

let dir: string;
let vpcd: FakeVpcd;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tally-vcard-'));
  vpcd = new FakeVpcd(join(dir, 'slot0.sock'));
  await vpcd.listen();
});

afterEach(async () => {
  await vpcd.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('VirtualCard speaking vpcd’s protocol', () => {
  it('answers the ATR request, power codes and APDUs with the SmartCard behind it', async () => {
    const card = SimulatedCard.blank();
    const slot = new VirtualCard({ endpoint: { path: vpcd.path } });
    await slot.insert(card);
    expect(toHex(await vpcd.next())).toBe(toHex(SIMULATED_CARD_ATR));
    vpcd.send(Uint8Array.of(VpcdControl.POWER_ON));
    vpcd.send(selectApplet());
    const response = parseResponseApdu(await vpcd.next());
    expect(response.sw).toBe(0x9000);
    expect(toHex(parseFci(response.data).chipUid)).toBe(toHex(card.chipUid));
    vpcd.send(Uint8Array.of(VpcdControl.RESET));
    vpcd.send(Uint8Array.of(VpcdControl.POWER_OFF));
    vpcd.send(Uint8Array.of(VpcdControl.GET_ATR));
    expect(toHex(await vpcd.next())).toBe(toHex(SIMULATED_CARD_ATR));
    expect(slot.stats).toMatchObject({ connections: 1, apdus: 1, powerOns: 1, resets: 1, powerOffs: 1, atrRequests: 2 });
    await slot.remove();
  });

  it('a reset forgets the selected applet, as a real card does', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path } });
    await slot.insert(SimulatedCard.blank());
    await vpcd.next();
    vpcd.send(selectApplet());
    expect(parseResponseApdu(await vpcd.next()).sw).toBe(0x9000);
    vpcd.send(Uint8Array.of(VpcdControl.RESET));
    vpcd.send(Uint8Array.of(0x80, 0xca, 0x00, 0x81, 0x00));
    expect(parseResponseApdu(await vpcd.next()).sw).toBe(0x6985);
    await slot.remove();
  });

  it('remove closes the connection; a second insert without remove is refused', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path } });
    await slot.insert(SimulatedCard.blank());
    await expect(slot.insert(SimulatedCard.blank())).rejects.toSatisfy((e: unknown) => isTallyError(e, 'USAGE'));
    await slot.remove();
    await until(() => vpcd.closes === 1, 'vpcd to see the close');
    expect(slot.isInserted).toBe(false);
    expect(vpcd.connections).toBe(1);
  });

  it('pulled during an APDU: the connection closes and that APDU gets no answer', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path } });
    await slot.insert(SimulatedCard.blank());
    await vpcd.next();
    slot.removeDuringNextApdu();
    vpcd.send(selectApplet());
    await until(() => vpcd.closes === 1, 'the card to leave');
    await expect(vpcd.next(200)).rejects.toThrow('no answer');
    expect(slot.stats.apdus).toBe(0);
    expect(slot.isInserted).toBe(false);
  });

  it('when vpcd drops the connection while the card is inserted, the card comes back by itself', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path }, reconnectMs: 10 });
    await slot.insert(SimulatedCard.blank());
    await vpcd.next();
    vpcd.dropConnection();
    await until(() => vpcd.connections === 2 && slot.isPolled, 'the card to reconnect');
    expect(toHex(await vpcd.next())).toBe(toHex(SIMULATED_CARD_ATR));
    expect(slot.stats.connections).toBe(2);
    await slot.remove();
  });

  it('insert rejects READER_TIMEOUT when nothing polls the slot, and the card stays inserted', async () => {
    const slot = new VirtualCard({ endpoint: { path: join(dir, 'nobody.sock') }, reconnectMs: 10 });
    await expect(slot.insert(SimulatedCard.blank(), { timeoutMs: 100 })).rejects.toSatisfy((e: unknown) => isTallyError(e, 'READER_TIMEOUT'));
    expect(slot.isInserted).toBe(true);
    expect(slot.isPolled).toBe(false);
    await slot.remove();
  });

  it('answerDelayMs holds each answer back, like a slow real card', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path }, answerDelayMs: 60 });
    await slot.insert(SimulatedCard.blank());
    await vpcd.next();
    const start = performance.now();
    vpcd.send(selectApplet());
    await vpcd.next();
    expect(performance.now() - start).toBeGreaterThanOrEqual(55);
    await slot.remove();
  });

  it('a card that throws answers 6F00 instead of going silent', async () => {
    const slot = new VirtualCard({ endpoint: { path: vpcd.path } });
    const broken = {
      powerOn: () => SIMULATED_CARD_ATR,
      powerOff: () => undefined,
      transmit: (): Uint8Array => {
        throw new Error('EEPROM fault');
      },
    };
    await slot.insert(broken);
    await vpcd.next();
    vpcd.send(selectApplet());
    expect(toHex(await vpcd.next())).toBe('6f00');
    await slot.remove();
  });
});
