/** The ingest worker pool: reports prepared on worker threads come out as on the main thread; a worker that dies fails its jobs and is replaced. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PayloadError } from '../../src/codecs/mqtt/PayloadError.js';
import { encodeReport } from '../../src/codecs/mqtt/report.js';
import { createIngestWorkerPool, workerEntry } from '../../src/server/ingest/ingestWorkerPool.js';
import { prepareReport, type PrepareRequest } from '../../src/server/ingest/prepareReport.js';
import { ReportRejection } from '../../src/server/ingest/verifyReport.js';
import { makeBatch, makeInvestor, SignedLedger } from '../support/signedLedger.js';

const dir = mkdtempSync(join(tmpdir(), 'tally-workers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const investor = makeInvestor();
const ledger = new SignedLedger(investor, 'T-0001', 'CL-1');
const batch = makeBatch(investor, 'CL-1', 1, 20);
ledger.loadBatch(batch);
for (let serial = 1; serial <= 10; serial++) ledger.use(batch, serial);
const payload = encodeReport({ transaction: 77, certificate: ledger.certificate, entries: ledger.entries });

const request = (overrides: Partial<PrepareRequest> = {}): PrepareRequest => ({ terminalId: 'T-0001', payload, rootPublicKey: investor.rootPublicKey, signatureCheck: 'chain-anchored', ...overrides });

describe('ingest worker pool', () => {
  const pool = createIngestWorkerPool(2);
  afterAll(() => pool.close());

  it('prepares a report exactly as the main thread does, for both signature checks', async () => {
    for (const signatureCheck of ['chain-anchored', 'every-entry'] as const) {
      const inWorker = await pool.prepare(request({ signatureCheck }));
      const inline = await prepareReport(request({ signatureCheck }));
      expect(inWorker.transaction).toBe(77);
      expect(inWorker.report!.entries.map((e) => e.row.seq)).toEqual(ledger.entries.map((_, i) => i + 1));
      expect(inWorker.report!.entries.length).toBe(inline.report!.entries.length);
      for (const [i, entry] of inWorker.report!.entries.entries()) {
        const expected = inline.report!.entries[i]!;
        expect({ ...entry.row, hash: [...entry.row.hash], prevHash: [...entry.row.prevHash], raw: [...entry.row.raw] }).toEqual({
          ...expected.row,
          hash: [...expected.row.hash],
          prevHash: [...expected.row.prevHash],
          raw: [...expected.row.raw],
        });
        expect(entry.batch).toEqual(expected.batch);
      }
    }
  });

  it('brings back refusals as the same errors: a bad frame as PayloadError, a wrong terminal as ReportRejection', async () => {
    const garbage = pool.prepare(request({ payload: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) }));
    await expect(garbage).rejects.toBeInstanceOf(PayloadError);
    await expect(garbage).rejects.toMatchObject({ reason: 'malformed' });
    const impostor = await pool.prepare(request({ terminalId: 'T-0002' }));
    expect(impostor.report).toBeUndefined();
    expect(impostor.rejection).toBeInstanceOf(ReportRejection);
    expect(impostor.rejection!.reason).toBe('terminal-mismatch');
  });

  it('finds the bad signature in a batch spread over the threads', async () => {
    const jobs = ledger.entries.map((raw) => ({ publicKey: ledger.device.publicKey, message: raw.subarray(0, raw.length - 66), signature: raw.subarray(raw.length - 64) }));
    const tampered = jobs.map((j, i) => (i === 5 ? { ...j, message: Uint8Array.from(j.message, (b, k) => (k === 20 ? b ^ 1 : b)) } : j));
    expect(await pool.verify(jobs)).toEqual(jobs.map(() => true));
    expect(await pool.verify(tampered)).toEqual(jobs.map((_, i) => i !== 5));
  });
});

describe('a worker that dies', () => {
  // the real worker, wrapped: a report for terminal CRASH kills the thread before the worker sees it
  const entry = join(dir, 'crashingWorker.mjs');
  writeFileSync(
    entry,
    `import { parentPort } from 'node:worker_threads';
const on = parentPort.on.bind(parentPort);
parentPort.on = (event, handler) => on(event, event !== 'message' ? handler : (m) => {
  if (m.kind === 'prepare' && m.request.terminalId === 'CRASH') process.exit(3);
  handler(m);
});
await import(${JSON.stringify(pathToFileURL(workerEntry()).href)});
`,
  );

  it('fails the jobs it held, and its replacement takes the next ones', async () => {
    const pool = createIngestWorkerPool(1, entry);
    try {
      expect((await pool.prepare(request())).report?.entries.length).toBe(ledger.entries.length);
      const crashes = 3;
      for (let i = 0; i < crashes; i++) await expect(pool.prepare(request({ terminalId: 'CRASH' }))).rejects.toThrow(/ingest worker stopped: exit code 3/);
      const after = await Promise.all(Array.from({ length: 4 }, () => pool.prepare(request())));
      expect(after.map((p) => p.report?.entries.length)).toEqual(after.map(() => ledger.entries.length));
    } finally {
      await pool.close();
    }
  });
});
