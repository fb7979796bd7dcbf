/**
 * The registry by hand, on card files: a station certified by the mother card
 * exports its registry; the server imports it (twice: nothing changes; a
 * tampered copy: refused with the reason) and lists clinics, terminals, cards,
 * batches, stations and the issuance log as tables or JSON.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/tally.js';
import { formatTable } from '../../src/cli/commands/server.js';
import { tempDir } from '../../src/scenario/CardWorld.js';

async function tally(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dir = tempDir('tally-cli-registry-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tally issue export and tally server registry', () => {
  it('certifies the station, exports, imports once, refuses a tampered export, lists', async () => {
    const reg = ['--registry', join(dir, 'issuing.db')];
    const store = ['--store', join(dir, 'server.db')];
    const f = (name: string) => join(dir, name);
    expect((await tally('issue', 'mother', '--card', f('mother.json'), '--pin', '123456', '--investor', 'Acme Capital', ...reg)).code).toBe(0);
    expect((await tally('issue', 'white', '--mother', f('mother.json'), '--mother-pin', '123456', '--card', f('white.json'), '--pin', '4321', '--quota', '3', ...reg)).code).toBe(0);
    const batch = await tally('issue', 'batch', '--white', f('white.json'), '--white-pin', '4321', '--card', f('batch.json'), '--clinic', 'C1', '--count', '3', '--out-dir', f('cards'), ...reg);
    expect(batch.code).toBe(0);
    const batchId = /\(([0-9a-f]{16})\)/.exec(batch.out)![1]!;

    const early = await tally('issue', 'export', '--out', f('export.json'), ...reg);
    expect(early.code).not.toBe(0);
    expect(early.err).toContain('certify-station');
    const wrongPin = await tally('issue', 'certify-station', '--station-id', 'ST-HQ', '--mother', f('mother.json'), '--mother-pin', '000000', ...reg);
    expect(wrongPin.err).toContain('PIN_WRONG');
    const certified = await tally('issue', 'certify-station', '--station-id', 'ST-HQ', '--mother', f('mother.json'), '--mother-pin', '123456', ...reg);
    expect(certified.code).toBe(0);
    const root = /investor root key ([0-9a-f]{64})/.exec(certified.out)![1]!;
    writeFileSync(f('root.hex'), `${root}\n`);
    const exported = await tally('issue', 'export', '--out', f('export.json'), ...reg);
    expect(exported.out).toContain('3 cards, 1 one-time batches');

    expect((await tally('server', 'registry', 'add-clinic', 'C1', '--name', 'Eye Clinic', '--price', '12000', '--share', '0.6', ...store)).out).toBe('clinic C1 added');
    expect((await tally('server', 'registry', 'add-terminal', 'T-1', '--clinic', 'C1', '--note', 'OCT room', ...store)).code).toBe(0);
    const badShare = await tally('server', 'registry', 'add-clinic', 'C2', '--name', 'X', '--share', '70', ...store);
    expect(badShare.code).not.toBe(0);

    // tampered: one byte of the payload (the one-time cards written) changed
    const text = readFileSync(f('export.json'), 'utf8');
    const envelope = JSON.parse(text) as { payload: string };
    writeFileSync(f('tampered.json'), JSON.stringify({ ...JSON.parse(text), payload: envelope.payload.replace('"written":3', '"written":1') }));
    const refused = await tally('server', 'registry', 'import', f('tampered.json'), ...store, '--root-file', f('root.hex'));
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/export refused \(bad-signature\).*nothing imported/);
    expect((await tally('server', 'registry', 'cards', ...store)).out).toBe('(none)');

    const first = await tally('server', 'registry', 'import', f('export.json'), ...store, '--root', root);
    expect(first.out).toBe('station ST-HQ: 3 cards added, 0 marked written, 1 one-time batches added, 0 updated');
    const again = await tally('server', 'registry', 'import', f('export.json'), ...store, '--root', root, '--json');
    expect(JSON.parse(again.out)).toMatchObject({ alreadyImported: true, cardsAdded: 0 });
    const otherRoot = await tally('server', 'registry', 'import', f('export.json'), ...store, '--root', 'ab'.repeat(32));
    expect(otherRoot.err).toContain('station-not-certified');

    const batches = JSON.parse((await tally('server', 'registry', 'batches', ...store, '--json')).out);
    expect(batches).toEqual([expect.objectContaining({ batchId, batchNo: 1, clinicCode: 'C1', count: 3, serialFrom: 1, serialTo: 3, oneTimeWritten: 3, stationId: 'ST-HQ' })]);
    const cardsTable = (await tally('server', 'registry', 'cards', '--kind', 'white', ...store)).out.split('\n');
    expect(cardsTable[0]).toMatch(/^cardId\s+kind\s+stationId/);
    expect(cardsTable).toHaveLength(2);
    expect(cardsTable[1]).toMatch(/white\s+ST-HQ/);
    const issuance = JSON.parse((await tally('server', 'registry', 'issuance', '--station', 'ST-HQ', ...store, '--json')).out) as Array<{ kind: string }>;
    expect(issuance.map((i) => i.kind)).toEqual(['mother', 'white', 'batch', 'one-time']);
    const terminals = JSON.parse((await tally('server', 'registry', 'terminals', ...store, '--json')).out);
    expect(terminals).toEqual([{ terminalId: 'T-1', state: 'expected', clinicCode: 'C1', note: 'OCT room' }]);
    const stations = (await tally('server', 'registry', 'stations', ...store)).out;
    expect(stations).toContain('ST-HQ');
    expect(stations).toMatch(/\d{4}-\d{2}-\d{2}T/);
    const clinics = JSON.parse((await tally('server', 'registry', 'clinics', ...store, '--json')).out);
    expect(clinics).toEqual([expect.objectContaining({ clinicCode: 'C1', name: 'Eye Clinic', pricePerUse: 12000, investorShare: 0.6 })]);
    expect((await tally('server', 'registry', 'nonsense', ...store)).code).not.toBe(0);
  });

  it('formats rows as an aligned table', () => {
    expect(formatTable([])).toEqual(['(none)']);
    expect(formatTable([{ a: 1, bb: 'x' }, { a: 222, c: true }])).toEqual(['a    bb  c', '1    x', '222      true']);
  });
});
