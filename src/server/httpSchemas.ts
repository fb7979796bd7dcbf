/**
 * The HTTP API's schemas (TypeBox, the project's schema library for JSON over
 * HTTP and the gateway): fastify validates queries with them, serialises
 * answers with them and builds the OpenAPI document (GET /api/openapi.json)
 * from them. Rows name the fields a client may rely on; a row may carry more
 * (additionalProperties), so a new store column never vanishes from an answer.
 * Registry write bodies are described here and checked by registryAdmin's
 * validator (the same one the CLI uses), which names the failing field.
 */
import { Type, type TSchema } from '@sinclair/typebox';

const row = <T extends Record<string, TSchema>>(properties: T, description: string) => Type.Object(properties, { additionalProperties: true, description });

export const ErrorAnswer = Type.Object(
  {
    status: Type.Literal('error'),
    error: Type.Object({
      code: Type.String({ description: 'stable code (see README, troubleshooting)' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'the input field at fault' })),
      number: Type.Optional(Type.Integer({ description: 'the project error number (src/errors.ts, docs/troubleshooting.md)' })),
      zh: Type.Optional(Type.String({ description: 'the operator message in Chinese' })),
    }),
  },
  { $id: 'ErrorAnswer', description: '4xx: the request is at fault; 5xx: the server is (code internal, never a stack)' },
);

export const ok = <T extends TSchema>(data: T) => Type.Object({ status: Type.Literal('ok'), data });

const clinicRow = row({ clinicCode: Type.String(), name: Type.String(), pricePerUse: Type.Optional(Type.Integer()), investorShare: Type.Optional(Type.Number()), addedAt: Type.Number() }, 'a registered clinic');
const registeredTerminal = row(
  { terminalId: Type.String(), clinicCode: Type.String(), status: Type.Union([Type.Literal('expected'), Type.Literal('retired')]), note: Type.Optional(Type.String()), addedAt: Type.Number(), retiredAt: Type.Optional(Type.Number()) },
  'a terminal the administrator registered',
);

export const Rows = {
  health: row({ store: Type.String({ description: 'sqlite or postgres' }) }, 'the store kind and the ingest counters'),
  terminal: row(
    {
      terminalId: Type.String(),
      clinicCode: Type.String(),
      contiguousSeq: Type.Integer(),
      highestSeq: Type.Integer(),
      status: Type.String({ description: 'online, offline or unknown' }),
      reachability: Type.Optional(Type.String({ description: "sms-only: reachable by SMS only (its last SMS report is newer than anything over the data link); data: the data link is newer. Absent: no SMS report ever" })),
      sms: Type.Optional(
        Type.Object(
          { lastAt: Type.Number(), headSeq: Type.Integer(), headHashPrefix: Type.String(), outboxDepth: Type.Integer(), reports: Type.Integer(), contradicted: Type.Integer(), batches: Type.Array(Type.Object({ batchNo: Type.Integer(), usesSince: Type.Integer(), usesTotal: Type.Integer() })) },
          { description: 'what the last SMS report said: chain head, outbox, uses per batch; contradicted: SMS heads the ledger contradicts' },
        ),
      ),
    },
    'a terminal seen by the ingest',
  ),
  usesGrouped: row({ key: Type.String(), uses: Type.Integer() }, 'uses per terminal, clinic or day'),
  dailyUses: row(
    {
      terminalId: Type.String(),
      clinicCode: Type.String(),
      day: Type.String(),
      uses: Type.Integer(),
      clockUntrusted: Type.Optional(Type.Boolean({ description: "true: recorded with an untrusted terminal clock; day is the day the server received them, kept apart" })),
    },
    'uses of one terminal on one UTC day',
  ),
  batch: row({ batchId: Type.String(), batchNo: Type.Integer(), clinicCode: Type.String(), count: Type.Integer(), terminalId: Type.String(), used: Type.Integer(), released: Type.Integer(), remaining: Type.Integer(), notYetReported: Type.Optional(Type.Integer()) }, 'one batch reconciled'),
  income: row(
    { clinicCode: Type.String(), uses: Type.Integer(), gross: Type.Integer(), investor: Type.Integer(), clinic: Type.Integer(), agentCode: Type.Optional(Type.String()), agent: Type.Optional(Type.Integer({ description: "the agent's share, out of the investor's part" })), untrustedUses: Type.Optional(Type.Integer({ description: 'of uses, how many were recorded with an untrusted terminal clock (dated by arrival)' })), voucherUses: Type.Optional(Type.Integer({ description: 'of uses, how many were paid with a service voucher (each voucher once)' })) },
    'income split of one clinic, in the smallest currency unit (fen)',
  ),
  useSeries: Type.Object(
    { buckets: Type.Array(Type.String()), groups: Type.Array(Type.Object({ key: Type.String({ description: "a clinic, terminal or agent ('': no agent)" }), uses: Type.Array(Type.Integer()) })), total: Type.Integer() },
    { description: 'uses per bucket (day, Monday of the week, or month) for each group' },
  ),
  agent: row({ agentCode: Type.String(), name: Type.String(), share: Type.Number(), addedAt: Type.Number(), clinics: Type.Array(Type.String()) }, 'an agent with its share and its clinics'),
  user: row({ username: Type.String(), role: Type.String(), scope: Type.Optional(Type.String()), locale: Type.String(), createdAt: Type.Number(), disabled: Type.Boolean() }, 'a console user'),
  audit: row({ id: Type.Integer(), at: Type.Number(), username: Type.String(), role: Type.String(), action: Type.String(), target: Type.String(), detail: Type.String(), address: Type.String() }, 'one administrative action: who, what, when, from where'),
  alert: row({}, 'an alert raised by the ingest (kind, terminal, detail)'),
  rejection: row({}, 'a report or entry the ingest refused, with its reason'),
  clinic: clinicRow,
  registryTerminal: row({ terminalId: Type.String(), state: Type.String() }, 'a terminal as the registry sees it: expected, seen, retired or unexpected'),
  card: row({ kind: Type.String() }, 'a mother, white or batch card an issuing station made'),
  registryBatch: row({ batchId: Type.String(), clinicCode: Type.String(), count: Type.Integer() }, 'a batch of one-time cards as issued'),
  station: row({ stationId: Type.String() }, 'an issuing station'),
  issuance: row({ kind: Type.String() }, 'one record of an issuing station'),
  statement: row(
    {
      clinicCode: Type.String(),
      time: Type.Number(),
      pricing: row({ pricePerUse: Type.Integer(), investorShareBp: Type.Integer() }, "the clinic's price and shares (basis points)"),
      income: row({ clinicCode: Type.String(), uses: Type.Integer(), gross: Type.Integer(), investor: Type.Integer(), clinic: Type.Integer() }, "the clinic's row of tally server report income, in fen"),
      terminals: Type.Array(row({ terminalId: Type.String(), entries: Type.Integer(), uses: Type.Integer(), income: row({ gross: Type.Integer() }, 'the split of the uses') }, "a terminal's uses from its ledger, and the audit bundle's signed statement of them (statement)")),
      ledgerUses: Type.Integer(),
      matches: Type.Boolean(),
      signed: Type.Boolean(),
    },
    "a clinic's statement: the income report's row and, per terminal, the signed statement of the ledger it holds",
  ),
  denylist: Type.Object({
    version: Type.Integer({ description: 'the highest deny-list version (0: empty)' }),
    cards: Type.Array(row({ cardId: Type.String(), version: Type.Integer(), reason: Type.String(), revokedAt: Type.Number(), revokedBy: Type.String() }, 'a revoked card')),
    terminals: Type.Array(row({ terminalId: Type.String(), received: Type.Boolean({ description: "the terminal's last heartbeat names this version or a later one" }) }, "a terminal and the deny-list version its last heartbeat names")),
  }),
  importSummary: row({ stationId: Type.String(), alreadyImported: Type.Boolean(), cardsAdded: Type.Integer() }, 'what an import added'),
} as const;

/** A UTC day in a query */
const DAY_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$';
/** The daily rows a page of GET /api/uses?group=none holds at most */
export const MAX_DAILY_PAGE = 10_000;

export const Queries = {
  uses: Type.Object(
    {
      group: Type.Optional(Type.Union([Type.Literal('terminal'), Type.Literal('clinic'), Type.Literal('day'), Type.Literal('none')], { description: 'default day' })),
      from: Type.Optional(Type.String({ pattern: DAY_PATTERN, description: 'group=none: the first UTC day (YYYY-MM-DD)' })),
      to: Type.Optional(Type.String({ pattern: DAY_PATTERN, description: 'group=none: the last UTC day, inclusive' })),
      limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,4}$', description: `group=none: rows a page, at most ${MAX_DAILY_PAGE} (the default)` })),
      after: Type.Optional(Type.String({ maxLength: 400, description: 'group=none: the next page; the X-Next-After header of the page before (absent on the last page)' })),
    },
    { additionalProperties: false },
  ),
  csv: Type.Object(
    {
      from: Type.Optional(Type.String({ pattern: DAY_PATTERN, description: 'the first UTC day (YYYY-MM-DD)' })),
      to: Type.Optional(Type.String({ pattern: DAY_PATTERN, description: 'the last UTC day, inclusive' })),
    },
    { additionalProperties: false },
  ),
  cards: Type.Object({ kind: Type.Optional(Type.Union([Type.Literal('mother'), Type.Literal('white'), Type.Literal('batch')])) }, { additionalProperties: false }),
  issuance: Type.Object({ station: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
  series: Type.Object(
    { period: Type.Optional(Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month')])), by: Type.Optional(Type.Union([Type.Literal('clinic'), Type.Literal('terminal'), Type.Literal('agent')])) },
    { additionalProperties: false },
  ),
  statement: Type.Object({ clinic: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
  audit: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })) }, { additionalProperties: false }),
} as const;

export const Bodies = {
  clinic: Type.Object(
    { clinicCode: Type.String({ minLength: 1, description: '1..16 UTF-8 bytes, no white space' }), name: Type.String({ minLength: 1, maxLength: 100 }), pricePerUse: Type.Optional(Type.Integer({ minimum: 0 })), investorShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })) },
    { additionalProperties: false },
  ),
  terminal: Type.Object(
    { terminalId: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$' }), clinicCode: Type.String({ minLength: 1 }), status: Type.Optional(Type.Union([Type.Literal('expected'), Type.Literal('retired')])), note: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })) },
    { additionalProperties: false },
  ),
  retire: Type.Object({ terminalId: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$' }), note: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })) }, { additionalProperties: false }),
  registryExport: Type.Object({}, { additionalProperties: true, description: 'an issuing station\'s export file (tally issue export), signed' }),
  agent: Type.Object(
    { agentCode: Type.String({ minLength: 1 }), name: Type.String({ minLength: 1, maxLength: 100 }), share: Type.Number({ minimum: 0, maximum: 1 }), clinics: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 500 })) },
    { additionalProperties: false },
  ),
  userChange: Type.Object(
    {
      username: Type.String({ minLength: 1, maxLength: 64 }),
      disabled: Type.Optional(Type.Boolean({ description: 'true: logins refused and every session of the user ended' })),
      role: Type.Optional(Type.Union(['sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient'].map((r) => Type.Literal(r)))),
      clinic: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
      agent: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
      wallet: Type.Optional(Type.String({ minLength: 1, maxLength: 16, description: 'the wallet of a patient user' })),
    },
    { additionalProperties: false },
  ),
  userAdd: Type.Object(
    {
      username: Type.String({ minLength: 1, maxLength: 64 }),
      role: Type.Union(['sysadmin', 'authority', 'issuer', 'agent', 'clinic', 'auditor', 'patient'].map((r) => Type.Literal(r))),
      clinic: Type.Optional(Type.String({ minLength: 1, description: 'the clinic of a clinic user' })),
      agent: Type.Optional(Type.String({ minLength: 1, description: 'the agent of an agent user' })),
      wallet: Type.Optional(Type.String({ minLength: 1, description: 'the wallet of a patient user (the id its vouchers are issued to)' })),
      locale: Type.Optional(Type.Union([Type.Literal('en'), Type.Literal('zh')])),
      password: Type.String({ minLength: 1, maxLength: 300, description: 'at least 12 characters, not the user name; never logged' }),
    },
    { additionalProperties: false },
  ),
  revoke: Type.Object({ cardId: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'the card id, 16 lowercase hex digits' }), reason: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
  ack: Type.Object({ key: Type.String({ minLength: 1, maxLength: 300 }), note: Type.String({ minLength: 1, maxLength: 500 }) }, { additionalProperties: false }),
} as const;

export const Writes = {
  clinic: Type.Object({ created: Type.Boolean(), clinic: clinicRow }),
  terminal: Type.Object({ created: Type.Boolean(), terminal: registeredTerminal }),
  retired: Type.Object({ terminal: registeredTerminal }),
  agent: Type.Object({ created: Type.Boolean(), agent: row({ agentCode: Type.String(), name: Type.String(), share: Type.Number(), addedAt: Type.Number() }, 'an agent') }),
  ack: Type.Object({ created: Type.Boolean(), key: Type.String() }),
  userChange: Type.Object({ user: Rows.user, sessionsEnded: Type.Integer() }),
  userAdd: Type.Object({ user: Rows.user }),
  revoke: Type.Object({ created: Type.Boolean(), card: row({ cardId: Type.String(), version: Type.Integer() }, 'the revoked card'), version: Type.Integer(), publishedTo: Type.Integer({ description: 'terminals the list was published to' }) }),
} as const;
