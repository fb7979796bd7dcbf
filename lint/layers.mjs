// The layers of src/ and what each may import: the one table that eslint's
// `tally/layers` rule enforces at every folder depth and that
// docs/architecture.md shows (test/lint/layers.test.ts fails while the
// document's table differs from layersMarkdown()).
//
// A file belongs to the longest layer name that prefixes its path under src/
// (`readers/serial/FirmwareLink.ts` is in `readers/serial`, `readers/CardReader.ts`
// in `readers`). Imports inside one layer are always allowed. `packages` lists
// the npm packages and node: modules a layer may use ('*' any, a trailing `*`
// a prefix); `notPackages` narrows '*'.
import path from 'node:path';

const NODE_IO = ['node:fs', 'node:path', 'node:os', 'node:net', 'node:child_process', 'node:url', 'node:util', 'node:stream', 'node:module', 'node:events', 'node:timers', 'node:timers/promises', 'node:readline'];

/** @type {Record<string, {may: string[], packages: string[], notPackages?: string[], why: string}>} */
export const LAYERS = {
  errors: { may: [], packages: [], why: 'codes and operator messages, imported by every layer' },
  codecs: { may: ['errors'], packages: [], why: 'pure: bytes in, values out; no I/O, no clock, no other layer' },
  'codecs/hl7': { may: ['codecs', 'errors'], packages: ['@medplum/core'], why: 'pure: HL7 v2 (ER7) through Medplum\'s parser with our own limits, MLLP framing, ACKs' },
  'codecs/gateway': { may: ['codecs', 'codecs/hl7', 'errors'], packages: ['@sinclair/typebox'], why: 'pure: the gateway\'s allow list, each message type declared once with its TypeBox schema, and its canonical encoding' },
  crypto: { may: ['codecs', 'errors'], packages: ['node:crypto'], why: 'signatures and chain checks with public keys; no I/O' },
  card: { may: ['codecs', 'crypto', 'errors'], packages: [], why: 'the applet\'s commands; reaches a card only through an ApduChannel' },
  util: { may: ['codecs', 'errors'], packages: ['better-sqlite3', 'node:*'], why: 'clock, scheduler, logger contract, openDatabase' },
  config: { may: ['codecs', 'errors', 'util'], packages: ['yaml', '@sinclair/typebox', 'node:fs', 'node:path'], why: 'one TypeBox schema for the settings (their type, their JSON Schema); read by the roots' },
  logging: { may: ['codecs', 'errors', 'util'], packages: ['pino', 'node:*'], why: 'pino behind the Logger contract' },
  pki: { may: ['codecs', 'crypto', 'errors', 'util'], packages: ['node-forge', 'node:*'], why: 'X.509 with node-forge' },
  transports: { may: ['errors', 'util'], packages: ['serialport', '@serialport/*', ...NODE_IO], why: 'a transport moves bytes and knows nothing above it' },
  'transports/modem': { may: ['codecs', 'errors', 'transports', 'util'], packages: ['node:*'], why: 'the GSM modem: AT commands (TS 27.007/27.005) over a transport, SMS as PDUs through the pure codec' },
  readers: { may: ['card', 'codecs', 'errors', 'util'], packages: ['node:*'], why: 'the CardReader contract, which the terminal sees' },
  'readers/pcsc': { may: ['readers', 'card', 'codecs', 'errors', 'util'], packages: ['pcsclite', 'node:*'], why: 'the PC/SC backend (pcscd)' },
  'readers/serial': { may: ['readers', 'card', 'codecs', 'errors', 'transports', 'util'], packages: ['node:*'], why: 'the serial backend: the microcontroller board\'s protocol' },
  'readers/scanner': { may: ['codecs', 'errors', 'transports', 'util'], packages: ['node:*'], why: 'the QR scanner in serial mode (CDC ACM): AIM-prefixed lines into scans' },
  ledger: { may: ['codecs', 'crypto', 'errors', 'util'], packages: ['better-sqlite3', 'node:*'], why: 'the ledger owns the terminal database and nothing else' },
  terminal: { may: ['card', 'codecs', 'crypto', 'errors', 'ledger', 'readers', 'util'], packages: ['node:*'], why: 'decides a swipe; sees only the reader contract, never a backend' },
  issuing: { may: ['card', 'codecs', 'crypto', 'errors', 'util'], packages: ['better-sqlite3', 'node:*'], why: 'the issuing station talks to cards through ApduChannel' },
  sync: { may: ['codecs', 'crypto', 'errors', 'util'], packages: ['mqtt', 'node:*'], why: 'sync owns MQTT on the terminal side; the ledger is only its OutboxSource' },
  server: { may: ['codecs', 'crypto', 'errors', 'pki', 'util', 'config', 'logging'], packages: ['*'], notPackages: ['serialport', '@serialport/*', 'pcsclite'], why: 'the server is its own root and shares only codecs, crypto, pki and util with the terminal' },
  sim: { may: ['card', 'codecs', 'crypto', 'errors', 'readers', 'readers/serial', 'transports', 'util'], packages: ['node:*', 'qrcode'], why: 'simulators speak the real bytes and sit below the roots; the board renders its QR codes with qrcode' },
  'sim/his': { may: ['codecs', 'codecs/hl7', 'errors', 'util'], packages: ['mqtt', 'node:*'], why: 'the HIS simulator speaks real HL7 over MLLP and reads the slot counts from the hospital broker' },
  'sim/insurance': { may: ['errors', 'util'], packages: ['node:*'], why: 'the insurance platform simulator: its own HTTP service and SQLite database, nothing of the server it answers' },
  gateway: { may: ['codecs', 'codecs/gateway', 'codecs/hl7', 'crypto', 'errors', 'util'], packages: ['mqtt', 'better-sqlite3', 'node:*'], why: 'the isolation gateway: the only process with a leg on both networks; shares codecs, crypto and util, nothing of the terminal or the server' },
  daemon: { may: ['codecs', 'config', 'crypto', 'errors', 'ledger', 'logging', 'pki', 'readers', 'readers/pcsc', 'readers/scanner', 'readers/serial', 'sim', 'sync', 'terminal', 'transports', 'transports/modem', 'util'], packages: ['node:*'], why: 'composes the terminal side: a reader backend (the simulated board too, for integrators before hardware), the ledger, sync, the TLS files and their renewal (pki)' },
  scenario: { may: ['*'], packages: ['*'], why: 'a root: the demo and the rigs that tests, benches and the CLI share' },
  cli: { may: ['*'], packages: ['*'], why: 'the root of `tally`' },
};

/** Layers no other layer may import, whatever their `may` says. */
const ONLY_ROOTS_IMPORT = { cli: [], scenario: ['cli'] };

/** The layer of a path relative to src/ (posix), or undefined outside any. */
export function layerOf(relative) {
  const noExt = relative.replace(/\.(ts|js|mjs)$/, '');
  let best;
  for (const name of Object.keys(LAYERS)) {
    if (noExt === name || noExt.startsWith(`${name}/`)) {
      if (!best || name.length > best.length) best = name;
    }
  }
  return best;
}

function packageAllowed(spec, patterns) {
  return patterns.some((p) => p === '*' || p === spec || (p.endsWith('*') && spec.startsWith(p.slice(0, -1))) || spec.startsWith(`${p}/`));
}

/** Why `from` (a layer) may not import `spec` resolved to `toLayer` (or a package), or undefined. */
export function refusal(from, toLayer, spec) {
  const rule = LAYERS[from];
  if (toLayer === undefined) {
    const ok = packageAllowed(spec, rule.packages) && !(rule.notPackages && packageAllowed(spec, rule.notPackages));
    return ok ? undefined : `${from} must not use the package '${spec}' (lint/layers.mjs: ${rule.why})`;
  }
  if (toLayer === from) return undefined;
  const roots = ONLY_ROOTS_IMPORT[toLayer];
  if (roots && !roots.includes(from)) return `${from} must not import ${toLayer}: only ${roots.length ? roots.join(', ') : 'no layer'} may`;
  if (rule.may.includes('*') || rule.may.includes(toLayer)) return undefined;
  return `${from} must not import ${toLayer} (lint/layers.mjs: ${rule.why}; it may import ${rule.may.join(', ') || 'nothing'})`;
}

function check(context, node, spec) {
  if (typeof spec !== 'string') return;
  const filename = context.filename ?? context.getFilename();
  const srcRoot = path.join(context.cwd ?? process.cwd(), 'src');
  const fromRelative = path.relative(srcRoot, filename).split(path.sep).join('/');
  if (fromRelative.startsWith('..')) return;
  const from = layerOf(fromRelative);
  if (!from) {
    context.report({ node, message: `${fromRelative} is in no layer: add its folder to lint/layers.mjs and docs/architecture.md` });
    return;
  }
  let toLayer;
  if (spec.startsWith('.')) {
    const target = path.relative(srcRoot, path.resolve(path.dirname(filename), spec)).split(path.sep).join('/');
    if (target.startsWith('..')) return context.report({ node, message: `${from} must not import from outside src/ ('${spec}')` });
    toLayer = layerOf(target);
    if (!toLayer) return context.report({ node, message: `'${spec}' is in no layer: add its folder to lint/layers.mjs` });
  }
  const why = refusal(from, toLayer, spec);
  if (why) context.report({ node, message: why });
}

export const layersRule = {
  meta: { type: 'problem', docs: { description: 'keeps the layers of docs/architecture.md apart at every folder depth' }, schema: [] },
  create(context) {
    const fromSource = (node) => node.source && check(context, node.source, node.source.value);
    return {
      ImportDeclaration: fromSource,
      ExportNamedDeclaration: fromSource,
      ExportAllDeclaration: fromSource,
      ImportExpression: (node) => node.source.type === 'Literal' && check(context, node.source, node.source.value),
    };
  },
};

/** The table docs/architecture.md shows between its layers markers. */
export function layersMarkdown() {
  const rows = Object.entries(LAYERS).map(([name, rule]) => {
    const may = rule.may.includes('*') ? 'anything' : rule.may.length ? rule.may.map((m) => `\`${m}\``).join(', ') : 'nothing';
    const pk = rule.packages.includes('*')
      ? `any${rule.notPackages ? ` but ${rule.notPackages.map((p) => `\`${p}\``).join(', ')}` : ''}`
      : rule.packages.length ? rule.packages.map((p) => `\`${p}\``).join(', ') : 'none';
    const who = ONLY_ROOTS_IMPORT[name] ? (ONLY_ROOTS_IMPORT[name].length ? ` Only ${ONLY_ROOTS_IMPORT[name].map((r) => `\`${r}\``).join(', ')} may import it.` : ' No layer imports it.') : '';
    return `| \`${name}\` | ${may} | ${pk} | ${rule.why}.${who} |`;
  });
  return ['| layer (under `src/`) | may import | packages | why |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
