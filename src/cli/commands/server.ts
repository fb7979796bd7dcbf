import { readFileSync } from 'node:fs';
import { createServerStore, type ServerStoreOptions } from '../../server/createServerStore.js';
import { createIngestServer } from '../../server/IngestServer.js';
import { groupUses, incomeSplit } from '../../server/httpApi.js';
import { createLogger } from '../../logging/createLogger.js';
import { TallyError } from '../../errors.js';
import { integer, parse, required } from '../args.js';
import type { CliCommand } from '../command.js';

function storeOptions(value: string): ServerStoreOptions {
  if (value.startsWith('postgres://') || value.startsWith('postgresql://')) return { kind: 'postgres', connectionString: value };
  return { kind: 'sqlite', path: value.replace(/^sqlite:/, '') };
}

function rootKey(values: Record<string, unknown>): Uint8Array {
  const hex = typeof values.root === 'string' ? values.root : typeof values['root-file'] === 'string' ? readFileSync(values['root-file'], 'utf8').trim() : undefined;
  if (!hex || !/^[0-9a-fA-F]{64}$/.test(hex)) throw new TallyError('USAGE', '--root HEX (the investor root public key, 64 hex digits) or --root-file FILE is required');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export const serverRunCommand: CliCommand = {
  path: ['server', 'run'],
  summary: "the investor's ingest server: reports in, verified, stored once",
  help: `tally server run --broker URL --store (FILE | postgres://...) (--root HEX | --root-file FILE)
                 [--ca F --cert F --key F] [--mqtt 4|5] [--http-port N] [--shared-group NAME] [--client-id ID]

Subscribes to every terminal's reports, verifies each terminal's certificate
chain to the investor root, every entry's signature and the hash chain, stores
each entry exactly once, asks for resends of gaps and raises alerts (batch on
two terminals, serial used twice, forks, impersonation). With --http-port the
report API listens on 127.0.0.1 (/api/uses, /api/batches, /api/income, /api/alerts).
Several workers share the load with the same --shared-group.`,
  async run(args, io) {
    const values = parse(args, {
      broker: { type: 'string' },
      store: { type: 'string' },
      root: { type: 'string' },
      'root-file': { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      mqtt: { type: 'string' },
      'http-port': { type: 'string' },
      'shared-group': { type: 'string' },
      'client-id': { type: 'string' },
    });
    const log = createLogger({ level: process.env.TALLY_LOG_LEVEL ?? 'info' });
    const store = await createServerStore(storeOptions(required(values, 'store')));
    const server = await createIngestServer({
      store,
      rootPublicKey: rootKey(values),
      brokerUrl: required(values, 'broker'),
      protocolVersion: integer(values, 'mqtt', 5) === 4 ? 4 : 5,
      mqttOptions: {
        ...(typeof values.ca === 'string' ? { ca: readFileSync(values.ca) } : {}),
        ...(typeof values.cert === 'string' ? { cert: readFileSync(values.cert) } : {}),
        ...(typeof values.key === 'string' ? { key: readFileSync(values.key) } : {}),
      },
      ...(typeof values['http-port'] === 'string' ? { httpPort: integer(values, 'http-port') } : {}),
      ...(typeof values['shared-group'] === 'string' ? { sharedGroup: values['shared-group'] } : {}),
      ...(typeof values['client-id'] === 'string' ? { clientId: values['client-id'] } : {}),
      logger: log,
    });
    io.out(`ingest server running (store ${store.kind})${server.httpUrl ? `, reports at ${server.httpUrl}` : ''}`);
    await new Promise<void>((resolve) => {
      const stop = () => void server.stop().then(() => store.close()).then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  },
};

export const serverReportCommand: CliCommand = {
  path: ['server', 'report'],
  summary: 'usage, batch reconciliation, income split and alerts from the server store',
  help: `tally server report (uses [--by terminal|clinic|day] | batches | income [--price N --share S] | alerts | rejections) --store (FILE | postgres://...) [--json]

Reads the server's store. Income: price per use in cents (default 10000) and
the investor's share (default 0.7); the clinic gets the rest.`,
  async run(args, io) {
    const what = args[0];
    if (!what || what.startsWith('-')) throw new TallyError('USAGE', 'say which report: uses, batches, income, alerts or rejections');
    const values = parse(args.slice(1), { store: { type: 'string' }, by: { type: 'string' }, price: { type: 'string' }, share: { type: 'string' }, json: { type: 'boolean' } });
    const store = await createServerStore(storeOptions(required(values, 'store')));
    try {
      let rows: unknown[];
      switch (what) {
        case 'uses': {
          const by = (values.by ?? 'day') as 'terminal' | 'clinic' | 'day';
          if (!['terminal', 'clinic', 'day'].includes(by)) throw new TallyError('USAGE', '--by terminal, clinic or day');
          rows = groupUses(await store.usesPerDay(), by);
          break;
        }
        case 'batches':
          rows = await store.batchReconciliation();
          break;
        case 'income': {
          const share = typeof values.share === 'string' ? Number(values.share) : 0.7;
          rows = incomeSplit(await store.usesPerDay(), { default: { pricePerUse: integer(values, 'price', 10_000), investorShare: share } });
          break;
        }
        case 'alerts':
          rows = await store.alerts();
          break;
        case 'rejections':
          rows = await store.rejections(100);
          break;
        default:
          throw new TallyError('USAGE', `no report "${what}"`);
      }
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) io.out('(none)');
      else for (const row of rows) io.out(Object.entries(row as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('  '));
      return 0;
    } finally {
      await store.close();
    }
  },
};
