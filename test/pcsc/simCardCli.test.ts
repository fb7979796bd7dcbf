/**
 * `tally sim card` against a real pcscd: the console inserts a card file, the
 * PC/SC backend sees it and reads its FCI, the console removes it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simCardCommand, startSimCard, type SimCardHandle } from '../../src/cli/commands/simCard.js';
import { parseResponseApdu } from '../../src/codecs/apdu.js';
import { parseFci, selectApplet } from '../../src/codecs/applet.js';
import { toHex } from '../../src/codecs/bytes.js';
import { createPcscCardReader, type PcscCardReader } from '../../src/readers/pcsc/PcscCardReader.js';
import { newCardFile } from '../../src/sim/cardFile.js';
import { nextCardRemoval, nextCardSession, startTestPcscd, waitUntil, type TestPcscd } from '../support/pcscd.js';

let testPcscd: TestPcscd;
let reader: PcscCardReader;
let handle: SimCardHandle;
const dir = mkdtempSync(join(tmpdir(), 'tally-simcard-'));
const out: string[] = [];
const err: string[] = [];
const io = { out: (line: string) => out.push(line), err: (line: string) => err.push(line) };

beforeAll(async () => {
  testPcscd = await startTestPcscd();
  reader = createPcscCardReader({ readerName: testPcscd.pcscd.readerNames[1] });
  await reader.start();
  await waitUntil(() => reader.state === 'ready', 10_000, 'reader ready');
  handle = await startSimCard({ slot: 1, runDir: testPcscd.pcscd.runDir, trace: true }, io);
});

afterAll(async () => {
  await handle?.stop();
  await reader?.stop();
  await testPcscd?.release();
  rmSync(dir, { recursive: true, force: true });
});

describe('tally sim card', () => {
  it('has the path sim card and documents its console', () => {
    expect(simCardCommand.path).toEqual(['sim', 'card']);
    expect(simCardCommand.help).toContain('insert FILE');
  });

  it('inserts a card file into slot 1, the PC/SC backend reads it, and remove takes it out', async () => {
    const file = join(dir, 'blank.json');
    const card = newCardFile(file);
    const inserted = nextCardSession(reader);
    expect(await handle.command(`insert ${file}`)).toBe(true);
    const session = await inserted;
    const response = parseResponseApdu(await session.transmit(selectApplet()));
    expect(response.sw).toBe(0x9000);
    expect(toHex(parseFci(response.data).chipUid)).toBe(toHex(card.chipUid));
    expect(out.some((line) => line.startsWith('-> 00a40400'))).toBe(true);

    await handle.command('status');
    expect(out.some((line) => line.includes('inserted, seen by vpcd'))).toBe(true);

    const removed = nextCardRemoval(reader);
    await handle.command('remove');
    expect(await removed).toBe(session.id);
    expect(out).toContain('card removed');
    expect(await handle.command('quit')).toBe(false);
  });

  it('reports a bad command without stopping', async () => {
    expect(await handle.command('insert')).toBe(true);
    expect(await handle.command('frobnicate')).toBe(true);
    expect(err.some((line) => line.includes('insert FILE'))).toBe(true);
    expect(err.some((line) => line.includes('unknown command frobnicate'))).toBe(true);
  });
});
