/**
 * The issuing and provisioning tools through both real reader stacks: the
 * terminal board's serial protocol over a socat pty pair to the simulated
 * microcontroller, and PC/SC through a real pcscd with vpcd and our virtual
 * card. The tool runs in-process (main(args, io)); the test plays the operator,
 * inserting and removing cards as the tool's prompts ask.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SmartCard } from '../../src/card/ApduChannel.js';
import { parseReaderSpec, readerSpecFrom } from '../../src/cli/cardSource.js';
import type { CliIo } from '../../src/cli/command.js';
import { StatusServer } from '../../src/daemon/StatusServer.js';
import { isTallyError } from '../../src/errors.js';
import { main } from '../../src/cli/tally.js';
import { tempDir } from '../../src/scenario/CardWorld.js';
import { SimulatedCard } from '../../src/sim/SimulatedCard.js';
import { SimulatedReaderFirmware } from '../../src/sim/SimulatedReaderFirmware.js';
import { VirtualCard } from '../../src/sim/VirtualCard.js';
import { startPtyPair } from '../../src/transports/PtyPair.js';
import { openSerialTransport } from '../../src/transports/SerialPortTransport.js';
import { sleep, startTestPcscd } from '../support/pcscd.js';

/** One reader slot the test can put cards into, and the --reader value that reaches it */
interface Slot {
  readonly reader: string;
  /**
   * How long a person takes between pulling a card and the next one: pcscd
   * polls the slot (about 0.4 s), and a card pulled and put back within one
   * poll is a change it never sees.
   */
  readonly settleMs: number;
  /** The reader section of a terminal configuration file that names this slot */
  readonly readerConfig: string;
  insert(card: SmartCard): Promise<void>;
  remove(): Promise<void>;
  /** What the reader's display shows, where it has one */
  displayed?(): readonly string[];
  /** A second slot of the same kind, for --signer-reader (closed with this one) */
  companion(): Promise<Slot>;
  close(): Promise<void>;
}

async function startSerialSlot(): Promise<Slot> {
  const companions: Slot[] = [];
  const pty = await startPtyPair();
  const firmware = new SimulatedReaderFirmware({ device: { startDelayMs: 1, runMs: 2 } });
  const firmwareSide = await openSerialTransport(pty.firmwarePath);
  firmware.attach(firmwareSide);
  firmware.powerOn();
  return {
    reader: `serial:${pty.daemonPath}`,
    settleMs: 0,
    readerConfig: `reader:\n  backend: serial\n  serial:\n    path: ${pty.daemonPath}\n`,
    insert: async (card) => firmware.insertCard(card),
    remove: async () => void firmware.removeCard(),
    displayed: () => firmware.panel.lines,
    companion: async () => {
      const other = await startSerialSlot();
      companions.push(other);
      return other;
    },
    close: async () => {
      for (const other of companions) await other.close();
      firmware.powerOff();
      firmware.detach();
      await firmwareSide.close();
      await pty.stop();
    },
  };
}

async function startPcscSlot(): Promise<Slot> {
  const pcscd = await startTestPcscd();
  try {
    // vpcd gives pcscd two readers: the second serves --signer-reader
    const slots = [0, 1].map((index): Slot & { card: VirtualCard } => {
      const card = new VirtualCard({ endpoint: pcscd.pcscd.slotEndpoint(index) });
      const name = pcscd.pcscd.readerNames[index]!;
      return {
        card,
        reader: `pcsc:${name}`,
        settleMs: 800,
        readerConfig: `reader:\n  backend: pcsc\n  pcsc:\n    readerName: "${name}"\n`,
        insert: (c) => card.insert(c),
        remove: () => card.remove(),
        companion: async () => slots[1]!,
        close: () => card.close(),
      };
    });
    return {
      ...slots[0]!,
      close: async () => {
        for (const slot of slots) await slot.card.close();
        await pcscd.release();
      },
    };
  } catch (err) {
    await pcscd.release();
    throw err;
  }
}

/**
 * Plays the operator: answers "→ insert ..." and "→ remove ..." prompts. Cards
 * are known by the name the prompt gives them; a prompt for a blank card gets
 * a new blank card, kept under that name for the next steps.
 */
class Operator {
  readonly cards = new Map<string, SmartCard>();
  readonly prompts: string[] = [];
  /** While false the operator ignores prompts (no card comes) */
  responsive = true;
  /** Prompts the operator answers while responsive */
  answers: (prompt: string) => boolean = () => true;
  private actions: Promise<void> = Promise.resolve();
  private failure: unknown;

  /** Set for --signer-reader runs: "[signer reader]" prompts are answered there */
  signerSlot: Slot | undefined;

  constructor(private readonly slot: Slot) {}

  private act(action: () => Promise<void>): void {
    this.actions = this.actions.then(action).catch((err: unknown) => {
      this.failure ??= err;
    });
  }

  onPrompt(line: string): void {
    const insert = /^→ (?:\[signer reader\] )?insert (a blank card for )?(.+?)( again)?$/.exec(line);
    const remove = /^→ (?:\[signer reader\] )?remove /.test(line);
    if (!insert && !remove) return;
    this.prompts.push(line);
    if (!this.responsive || !this.answers(line)) return;
    const slot = line.startsWith('→ [signer reader]') ? this.signerSlot : this.slot;
    if (!slot) {
      this.failure ??= new Error(`a prompt for a second reader: ${line}`);
      return;
    }
    if (remove) {
      this.act(() => slot.remove());
      return;
    }
    const name = insert![2]!;
    let card = this.cards.get(name);
    if (!card) {
      if (!insert![1]) {
        this.failure ??= new Error(`asked for ${name}, which the operator does not have`);
        return;
      }
      card = SimulatedCard.blank();
      this.cards.set(name, card);
    }
    const chosen = card;
    this.act(() => slot.insert(chosen));
  }

  /** Runs one tally command, answering its prompts; leaves the slot empty afterwards */
  async tally(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = {
      out: (line) => out.push(line),
      err: (line) => {
        err.push(line);
        this.onPrompt(line);
      },
    };
    const code = await main(args, io);
    await this.actions;
    await this.slot.remove();
    await this.signerSlot?.remove();
    await sleep(this.slot.settleMs);
    if (this.failure) throw this.failure;
    return { code, out: out.join('\n'), err: err.join('\n') };
  }
}

function readerSuite(stack: 'serial' | 'pcsc', startSlot: () => Promise<Slot>): void {
  describe(`tally tools through the ${stack} reader`, () => {
    let slot: Slot;
    let operator: Operator;
    let dir: string;
    let fingerprint: string;
    const reg = (): string[] => ['--registry', join(dir, 'issuing.db')];
    const reader = (): string[] => ['--reader', slot.reader, '--card-timeout', '10'];

    beforeAll(async () => {
      slot = await startSlot();
      operator = new Operator(slot);
      dir = tempDir(`tally-cli-${stack}-`);
    }, 330_000);

    afterAll(async () => {
      await slot?.close();
    });

    it('personalises the mother card in the slot', async () => {
      const result = await operator.tally('issue', 'mother', ...reader(), '--pin', '123456', '--investor', 'Acme Capital', ...reg());
      expect(result.err).toContain('→ insert a blank card for the mother card');
      expect(result.code, result.err).toBe(0);
      expect(result.err).toContain('✓ the mother card written');
      expect(result.err).toContain('→ remove the mother card');
      fingerprint = /fingerprint ([0-9a-f]{64})/.exec(result.out)![1]!;
    });

    it('refuses a wrong mother PIN through the reader, and records nothing', async () => {
      const result = await operator.tally('issue', 'white', ...reader(), '--mother-pin', '999999', '--pin', '4321', '--quota', '5', ...reg());
      expect(result.code).toBe(1);
      expect(result.err).toMatch(/Wrong PIN: 2 tries left before the card blocks.*\[PIN_WRONG 2001\]/);
      const list = await operator.tally('issue', 'list', ...reg(), '--json');
      expect((JSON.parse(list.out) as { kind: string }[]).map((c) => c.kind)).toEqual(['mother']);
    });

    it('makes a white card, swapping the mother card and the blank card in one slot', async () => {
      operator.cards.delete('the white card');
      const result = await operator.tally('issue', 'white', ...reader(), '--mother-pin', '123456', '--pin', '4321', '--quota', '5', ...reg());
      expect(result.code, result.err).toBe(0);
      expect(result.out).toMatch(/white card [0-9a-f]{16}: quota 5 batch cards/);
      expect(operator.prompts).toContain('→ insert the mother card again');
      expect(result.err).toContain('✓ the white card written');
    });

    it('refuses another card put back in place of the mother card during a swap', async () => {
      const mother = operator.cards.get('the mother card')!;
      const white = operator.cards.get('the white card')!;
      operator.cards.delete('the white card');
      operator.answers = (prompt) => {
        // after the mother card has been seen, a blank card is put back instead of it
        if (prompt.includes('a blank card for the white card')) operator.cards.set('the mother card', SimulatedCard.blank());
        return true;
      };
      try {
        const result = await operator.tally('issue', 'white', ...reader(), '--mother-pin', '123456', '--pin', '4321', '--quota', '5', ...reg());
        expect(result.code).toBe(1);
        expect(result.err).toContain('→ insert the mother card again');
        expect(result.err).toMatch(/this is not the mother card that was in the slot before \[ISSUE_WRONG_CARD 3001\]/);
      } finally {
        operator.answers = () => true;
        operator.cards.set('the mother card', mother);
        operator.cards.set('the white card', white);
      }
    });

    it('makes a batch card and 3 one-time cards, card by card', async () => {
      const result = await operator.tally('issue', 'batch', ...reader(), '--white-pin', '4321', '--clinic', 'C1', '--count', '3', ...reg());
      expect(result.code, result.err).toBe(0);
      expect(result.out).toContain('3 of 3 one-time cards written');
      for (let serial = 1; serial <= 3; serial++) {
        expect(result.err).toContain(`→ insert a blank card for one-time card ${serial} of 3`);
        expect(result.err).toContain(`✓ one-time card ${serial} of 3 written`);
      }
      const list = JSON.parse((await operator.tally('issue', 'list', ...reg(), '--json')).out) as { kind: string; written: boolean }[];
      expect(list.filter((c) => c.kind === 'one-time' && c.written)).toHaveLength(3);
    });

    it('with --signer-reader the white card stays in a second reader: no swaps', async () => {
      operator.signerSlot = await slot.companion();
      // this batch's cards are new blanks; the first batch's stay for the terminal tests
      const firstBatch = new Map(operator.cards);
      operator.cards.delete('the batch card');
      operator.prompts.length = 0;
      try {
        const result = await operator.tally('issue', 'batch', ...reader(), '--signer-reader', operator.signerSlot.reader, '--white-pin', '4321', '--clinic', 'C2', '--count', '2', ...reg());
        expect(result.code, result.err).toBe(0);
        expect(result.out).toContain('2 of 2 one-time cards written');
        expect(operator.prompts).toEqual([
          '→ [signer reader] insert the white card',
          '→ insert a blank card for the batch card',
          '→ remove the batch card',
          '→ insert a blank card for one-time card 1 of 2',
          '→ remove one-time card 1 of 2',
          '→ insert a blank card for one-time card 2 of 2',
          '→ remove one-time card 2 of 2',
          '→ [signer reader] remove the white card',
        ]);
      } finally {
        operator.signerSlot = undefined;
        operator.cards.clear();
        for (const [name, card] of firstBatch) operator.cards.set(name, card);
      }
    });

    it('provisions a terminal with the mother card and swipes the batch and one-time cards', async () => {
      const data = join(dir, 'terminal');
      const provision = ['terminal', 'provision', '--data', data, ...reader(), '--terminal-id', 'T-1', '--clinic', 'C1'];
      const wrongPin = await operator.tally(...provision, '--pin', '000000', '--root-fingerprint', fingerprint);
      expect(wrongPin.code).toBe(1);
      expect(wrongPin.err).toContain('PIN_WRONG 2001');

      const done = await operator.tally(...provision, '--pin', '123456', '--root-fingerprint', fingerprint);
      expect(done.code, done.err).toBe(0);
      expect(done.out).toContain('terminal T-1 provisioned for clinic C1');

      const swipe = async (name: string) => {
        operator.cards.set('the card to swipe', operator.cards.get(name)!);
        return operator.tally('terminal', 'swipe', '--data', data, ...reader());
      };
      expect((await swipe('the batch card')).out).toContain('Batch 1 loaded: 3 one-time cards accepted');
      // the terminal board shows the outcome where the daemon would (a PC/SC reader has no display)
      if (slot.displayed) expect(slot.displayed().join(' ')).toContain('Batch 1 loaded');
      const first = await swipe('one-time card 2 of 3');
      expect(first.code, first.err).toBe(0);
      expect(first.out).toContain('Use granted: card 2 of batch 1. 2 left');
      const again = await swipe('one-time card 2 of 3');
      expect(again.code).toBe(3);
      expect(again.out).toContain('[ALREADY_USED]');
      // the reader named by a terminal configuration file instead of --reader
      const config = join(dir, 'terminal.yaml');
      writeFileSync(config, slot.readerConfig);
      operator.cards.set('the card to swipe', operator.cards.get('the white card')!);
      const white = await operator.tally('terminal', 'swipe', '--data', data, '--reader-config', config, '--card-timeout', '10');
      expect(white.err).toContain(stack === 'serial' ? 'reader: serial board on' : 'reader: PC/SC reader');
      expect(white.code).toBe(3);
      expect(white.out).toContain('[WRONG_TIER]');

      // while the daemon runs it owns the reader: the tool refuses before waiting for a card
      const daemon = new StatusServer(join(data, 'status.sock'), () => ({ pid: 4242 }));
      await daemon.start();
      try {
        const refused = await operator.tally('terminal', 'swipe', '--data', data, ...reader());
        expect(refused.code).toBe(1);
        expect(refused.err).toMatch(/daemon runs on .* \(pid 4242\): stop it first.*\[READER_IN_USE 5005\]/);
        expect(refused.err).not.toContain('→ insert');
      } finally {
        await daemon.stop();
      }

      const verify = await operator.tally('ledger', 'verify', '--data', data);
      expect(verify.code, verify.out).toBe(0);
    });

    it('leaves the one-time cards that did not come to the registry, and rewrites one through the reader', async () => {
      operator.cards.delete('the batch card');
      // card 1 of 2 is not blank (the first batch's card 1): refused at once, and the batch goes on
      operator.cards.set('one-time card 1 of 2', operator.cards.get('one-time card 1 of 3')!);
      operator.answers = (prompt) => !prompt.includes('one-time card 2 of 2');
      try {
        const batch = await operator.tally('issue', 'batch', '--reader', slot.reader, '--card-timeout', '1', '--white-pin', '4321', '--clinic', 'C1', '--count', '2', ...reg());
        expect(batch.code, batch.err).toBe(1);
        expect(batch.out, batch.err).toContain('0 of 2 one-time cards written');
        expect(batch.err).toContain('✗ one-time card 1 of 2 not written');
        expect(batch.err).toMatch(/serial 1 not written: Target card is not blank/);
        expect(batch.err).toMatch(/serial 2 not written: .*no card was inserted within 1 s.*\(tally issue rewrite\)/);
      } finally {
        operator.answers = () => true;
      }
      // a version 2 one-time record names its chip's own key, signed while the batch key exists: a serial never written cannot be written later
      const rewrite = await operator.tally('issue', 'rewrite', ...reader(), '--batch', '3', '--serial', '2', ...reg());
      expect(rewrite.code, rewrite.err).not.toBe(0);
      expect(rewrite.err).toMatch(/serial 2 of batch 3 was never written: a version 2 record names its chip's own key/);
      const list = JSON.parse((await operator.tally('issue', 'list', ...reg(), '--json')).out) as { kind: string; batch?: number; written: boolean }[];
      expect(list.filter((c) => c.kind === 'one-time' && c.batch === 3)).toEqual([]);
    });

    it('gives up with READER_TIMEOUT when no card comes', async () => {
      operator.responsive = false;
      try {
        const started = Date.now();
        const result = await operator.tally('terminal', 'swipe', '--data', join(dir, 'terminal'), '--reader', slot.reader, '--card-timeout', '1');
        expect(result.code).toBe(1);
        expect(result.err).toContain('→ insert the card to swipe');
        expect(result.err).toMatch(/no card was inserted within 1 s \(waiting for the card to swipe\) \[READER_TIMEOUT 5002\]/);
        expect(Date.now() - started).toBeLessThan(8000);

        const batch = await operator.tally('issue', 'batch', '--reader', slot.reader, '--card-timeout', '1', '--white-pin', '4321', '--clinic', 'C1', '--count', '2', ...reg());
        expect(batch.code).toBe(1);
        expect(batch.err).toContain('READER_TIMEOUT 5002');
      } finally {
        operator.responsive = true;
      }
    });
  });
}

describe('choosing the card source', () => {
  it('says clearly when the reader never gets ready', async () => {
    const dir = tempDir('tally-no-reader-');
    const err: string[] = [];
    const started = Date.now();
    const code = await main(['issue', 'mother', '--reader', `serial:${join(dir, 'no-such-port')}`, '--card-timeout', '1', '--pin', '123456', '--investor', 'X', '--registry', join(dir, 'r.db')], {
      out: () => undefined,
      err: (line) => err.push(line),
    });
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/serial board on .*no-such-port: not ready after 1 s \(unavailable: .*\) \[READER_UNAVAILABLE 5001\]/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reads --reader values', () => {
    expect(parseReaderSpec('file')).toEqual({ backend: 'file' });
    expect(parseReaderSpec('serial:/dev/ttyS1')).toEqual({ backend: 'serial', path: '/dev/ttyS1' });
    expect(parseReaderSpec('pcsc')).toEqual({ backend: 'pcsc' });
    expect(parseReaderSpec('pcsc:ACS ACR39U')).toEqual({ backend: 'pcsc', readerName: 'ACS ACR39U' });
    for (const bad of ['serial', 'serial:', 'usb', 'file:x', '']) {
      expect(() => parseReaderSpec(bad), bad).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });

  it('takes the default from --reader-config or TALLY_READER_* through the daemon schema, --reader first', () => {
    const dir = tempDir('tally-reader-config-');
    const file = join(dir, 'terminal.yaml');
    writeFileSync(file, 'reader:\n  backend: serial\n  serial:\n    path: /dev/ttyUSB0\n    baudRate: 57600\n');
    expect(readerSpecFrom({}, {})).toEqual({ backend: 'file' });
    expect(readerSpecFrom({ 'reader-config': file }, {})).toMatchObject({ backend: 'serial', path: '/dev/ttyUSB0', baudRate: 57600 });
    expect(readerSpecFrom({ 'reader-config': file }, { TALLY_READER_SERIAL_PATH: '/dev/ttyAMA0' })).toMatchObject({ path: '/dev/ttyAMA0' });
    expect(readerSpecFrom({}, { TALLY_READER_BACKEND: 'pcsc', TALLY_READER_PCSC_READER_NAME: 'Gemalto' })).toEqual({ backend: 'pcsc', readerName: 'Gemalto' });
    expect(readerSpecFrom({ reader: 'file', 'reader-config': file }, {})).toEqual({ backend: 'file' });
    const simulated = (() => {
      try {
        readerSpecFrom({}, { TALLY_READER_BACKEND: 'simulated' });
      } catch (err) {
        return err;
      }
    })();
    expect(isTallyError(simulated, 'CONFIG')).toBe(true);
    writeFileSync(file, 'reader:\n  backend: usb\n');
    expect(() => readerSpecFrom({ 'reader-config': file }, {})).toThrow(/reader.backend: must be one of serial, pcsc, simulated/);
  });
});

readerSuite('serial', startSerialSlot);
readerSuite('pcsc', startPcscSlot);
