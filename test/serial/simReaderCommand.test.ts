/** `tally sim reader`: the board on a fresh socat pty pair, driven by console commands, with the daemon's backend on the printed path */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeCommandApdu } from '../../src/codecs/apdu.js';
import { APPLET_AID } from '../../src/codecs/applet.js';
import { runConsole, simReaderCommand, startSimReader, type SimReaderHandle } from '../../src/cli/commands/simReader.js';
import { createSerialReader, type SerialReaderBackend } from '../../src/readers/serial/SerialReaderBackend.js';
import { newCardFile } from '../../src/sim/cardFile.js';
import { waitFor } from './rig.js';

const SELECT = encodeCommandApdu({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: APPLET_AID, le: 256 });

let handle: SimReaderHandle | undefined;
let reader: SerialReaderBackend | undefined;
afterEach(async () => {
  await reader?.stop();
  await handle?.stop();
  handle = undefined;
  reader = undefined;
});

function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

describe('tally sim reader', () => {
  it('is registered under sim reader with help text', async () => {
    expect(simReaderCommand.path).toEqual(['sim', 'reader']);
    const { io, out } = captureIo();
    expect(await simReaderCommand.run(['--help'], io)).toBe(0);
    expect(out.join('\n')).toMatch(/insert FILE/);
  });

  it('serves a card file over a pty pair to the serial backend; console commands insert, remove, reboot', async () => {
    const { io, out, err } = captureIo();
    handle = await startSimReader({ trace: true }, io);
    expect(handle.daemonPath).toMatch(/daemon$/);
    reader = createSerialReader(handle.daemonPath, { heartbeatMs: 0 });
    await reader.start();
    expect(reader.state).toBe('ready');
    const cardPath = join(mkdtempSync(join(tmpdir(), 'tally-simreader-')), 'card.json');
    newCardFile(cardPath);

    const input = new PassThrough();
    const consoleDone = runConsole(handle, input);
    input.write(`insert ${cardPath}\n`);
    await waitFor(() => reader!.currentSession() !== undefined, 'card session');
    const response = await reader.currentSession()!.transmit(SELECT);
    expect(response.at(-2)).toBe(0x90);
    await reader.show({ lines: ['Hello'], tone: 'ok', led: 'ok' });
    input.write('status\n');
    await waitFor(() => out.some((l) => l.includes('[Hello]')), 'status shows the display');
    input.write('remove\n');
    await waitFor(() => reader!.currentSession() === undefined, 'card removed');
    input.write('reboot\nbogus\nquit\n');
    await consoleDone;
    await waitFor(() => (reader?.stats.boots ?? 0) >= 1, 'boot seen');
    expect(err.some((l) => l.includes('unknown command bogus'))).toBe(true);
    // the trace shows frames in hex both ways
    expect(out.some((l) => /^-> a5/.test(l))).toBe(true);
    expect(out.some((l) => /^<- /.test(l))).toBe(true);
  });
});
