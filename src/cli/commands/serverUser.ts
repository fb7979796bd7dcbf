/**
 * The console's users and agents, on the server's own machine (the first system administrator comes from here:
 * no default password exists anywhere):
 *   tally server user add NAME --role ROLE [--clinic CODE | --agent CODE | --wallet ID] [--locale en|zh] [--password -] --store S
 *   tally server user passwd NAME [--password -] --store S
 *   tally server user list --store S [--json]
 *   tally server agent add CODE --name NAME --share S [--clinic CODE ...] --store S
 * The password is typed on the terminal (twice, not echoed) or, with --password -, read as one line of standard
 * input; never from the command line, where the process list would show it.
 */
import { TallyError } from '../../errors.js';
import { addUser, AgentInputSchema, changePassword, changeUser, cliActor, saveAgent, type UserChange } from '../../server/access/accessAdmin.js';
import { isRole, ROLES } from '../../server/access/roles.js';
import { createServerStore } from '../../server/createServerStore.js';
import { checkInput, RegistryInputError } from '../../server/registry/registryAdmin.js';
import type { ServerStore } from '../../server/ServerStore.js';
import { parse, pin, required } from '../args.js';
import type { CliCommand } from '../command.js';
import { formatTable, storeOptions } from './server.js';

/** One line typed on the terminal without echo */
function typeHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new TallyError('USAGE', 'interrupted'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    const done = (err?: Error): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    stdin.on('data', onData);
  });
}

async function readPassword(values: Record<string, unknown>, username: string): Promise<string> {
  if (values.password !== undefined) {
    if (values.password !== '-') throw new TallyError('USAGE', '--password takes only "-" (one line of standard input): a password on the command line shows in the process list');
    return pin(values, 'password', `the password for ${username}`);
  }
  if (!process.stdin.isTTY) throw new TallyError('USAGE', 'no terminal to type the password on: give --password - and the password as a line of standard input');
  const first = await typeHidden(`password for ${username}: `);
  const again = await typeHidden('again: ');
  if (first !== again) throw new TallyError('USAGE', 'the two passwords differ');
  return first;
}

async function withStore<T>(values: Record<string, unknown>, fn: (store: ServerStore) => Promise<T>): Promise<T> {
  const store = await createServerStore(storeOptions(required(values, 'store')));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export const serverUserCommand: CliCommand = {
  path: ['server', 'user'],
  summary: "the console's users: add (the first system administrator too), passwd, list",
  help: `tally server user add NAME --role ROLE [--clinic CODE | --agent CODE | --wallet ID] [--locale en|zh] [--password -] --store S
tally server user passwd NAME [--password -] --store S
tally server user disable NAME --store S
tally server user enable NAME --store S
tally server user role NAME --role ROLE [--clinic CODE | --agent CODE | --wallet ID] --store S
tally server user list --store S [--json]

Roles: ${ROLES.join(', ')} (docs/console.md says what each sees). A clinic user
needs --clinic, an agent user --agent (tally server agent add first), a patient
(the voucher wallet's owner) --wallet with the wallet id vouchers are issued to. The
password (12 characters or more) is typed twice on the terminal, or with
--password - read as one line of standard input. Each add and passwd is
written to the audit log with the operating-system account. disable ends every
session of the user at once and refuses its logins until enable; role ends its
sessions too (the new role holds from the next login). The last enabled system
administrator cannot be disabled nor given another role.`,
  async run(args, io) {
    const [what, name, ...rest] = args;
    if (what === 'list') {
      const values = parse([name, ...rest].filter((a): a is string => a !== undefined), { store: { type: 'string' }, json: { type: 'boolean' } });
      const users = await withStore(values, (store) => store.access.users());
      if (values.json) io.out(JSON.stringify(users, null, 2));
      else for (const line of formatTable(users.map((u) => ({ ...u, createdAt: new Date(u.createdAt).toISOString() })))) io.out(line);
      return 0;
    }
    if ((what === 'disable' || what === 'enable' || what === 'role') && name && !name.startsWith('-')) {
      const values = parse(rest, { store: { type: 'string' }, role: { type: 'string' }, clinic: { type: 'string' }, agent: { type: 'string' }, wallet: { type: 'string' } });
      let change: UserChange = { username: name, ...(what !== 'role' ? { disabled: what === 'disable' } : {}) };
      if (what === 'role') {
        const role = required(values, 'role');
        if (!isRole(role)) throw new TallyError('USAGE', `--role ${ROLES.join(', ')}`);
        change = { ...change, role, ...(typeof values.clinic === 'string' ? { clinic: values.clinic } : {}), ...(typeof values.agent === 'string' ? { agent: values.agent } : {}), ...(typeof values.wallet === 'string' ? { wallet: values.wallet } : {}) };
      }
      const { user, sessionsEnded } = await withStore(values, (store) => changeUser(store, change, Date.now()));
      io.out(`user ${user.username}: ${user.disabled ? 'disabled' : 'enabled'}, ${user.role}${user.scope ? ` of ${user.scope}` : ''}; ${sessionsEnded} session(s) ended`);
      return 0;
    }
    if ((what !== 'add' && what !== 'passwd') || !name || name.startsWith('-')) throw new TallyError('USAGE', 'tally server user add NAME --role ROLE ... | passwd NAME | disable NAME | enable NAME | role NAME --role ROLE | list');
    if (what === 'passwd') {
      const values = parse(rest, { store: { type: 'string' }, password: { type: 'string' } });
      const password = await readPassword(values, name);
      await withStore(values, (store) => changePassword(store, name, password, Date.now()));
      io.out(`password of ${name} changed`);
      return 0;
    }
    const values = parse(rest, { store: { type: 'string' }, role: { type: 'string' }, clinic: { type: 'string' }, agent: { type: 'string' }, wallet: { type: 'string' }, locale: { type: 'string' }, password: { type: 'string' } });
    const role = required(values, 'role');
    if (!isRole(role)) throw new TallyError('USAGE', `--role ${ROLES.join(', ')}`);
    const locale = values.locale ?? 'en';
    if (locale !== 'en' && locale !== 'zh') throw new TallyError('USAGE', '--locale en or zh');
    const storeValue = required(values, 'store');
    const password = await readPassword(values, name);
    const user = await withStore({ store: storeValue }, (store) =>
      addUser(store, {
        username: name,
        role,
        ...(typeof values.clinic === 'string' ? { clinic: values.clinic } : {}),
        ...(typeof values.agent === 'string' ? { agent: values.agent } : {}),
        ...(typeof values.wallet === 'string' ? { wallet: values.wallet } : {}),
        locale,
        password,
      }, Date.now()),
    );
    io.out(`user ${user.username} added (${user.role}${user.scope ? ` of ${user.scope}` : ''})`);
    return 0;
  },
};

export const serverAgentCommand: CliCommand = {
  path: ['server', 'agent'],
  summary: "the investor's sales agents: add one with its share and its clinics, list",
  help: `tally server agent add CODE --name NAME --share S [--clinic CODE ...] --store S
tally server agent list --store S [--json]

An agent places devices in clinics and earns --share (0..1) of each use's
gross, paid out of the investor's part (tally server report income shows it).
Each --clinic moves that clinic to this agent.`,
  async run(args, io) {
    const [what, code, ...rest] = args;
    if (what === 'list') {
      const values = parse([code, ...rest].filter((a): a is string => a !== undefined), { store: { type: 'string' }, json: { type: 'boolean' } });
      const rows = await withStore(values, async (store) => {
        const links = await store.access.clinicAgents();
        return (await store.access.agents()).map((a) => ({ ...a, clinics: links.filter((l) => l.agentCode === a.agentCode).map((l) => l.clinicCode).join(',') }));
      });
      if (values.json) io.out(JSON.stringify(rows, null, 2));
      else for (const line of formatTable(rows)) io.out(line);
      return 0;
    }
    if (what !== 'add' || !code || code.startsWith('-')) throw new TallyError('USAGE', 'tally server agent add CODE --name NAME --share S [--clinic CODE ...] | list');
    const values = parse(rest, { store: { type: 'string' }, name: { type: 'string' }, share: { type: 'string' }, clinic: { type: 'string', multiple: true } });
    const clinics = (values as Record<string, unknown>).clinic as string[] | undefined;
    let input;
    try {
      input = checkInput(AgentInputSchema, { agentCode: code, name: required(values, 'name'), share: Number(required(values, 'share')), ...(clinics ? { clinics } : {}) });
    } catch (err) {
      if (err instanceof RegistryInputError) throw new TallyError('USAGE', `${err.field === 'share' ? '--share' : err.field}: ${err.message}`);
      throw err;
    }
    const { created, row } = await withStore(values, async (store) => {
      const saved = await saveAgent(store, input, Date.now());
      await store.access.appendAudit({ at: Date.now(), ...cliActor(), action: 'agent.save', target: saved.row.agentCode, detail: JSON.stringify(input) });
      return saved;
    });
    io.out(`agent ${row.agentCode} ${created ? 'added' : 'updated'} (share ${row.share}${clinics ? `, clinics ${clinics.join(', ')}` : ''})`);
    return 0;
  },
};
