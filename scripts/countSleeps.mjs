#!/usr/bin/env node
// Counts the sleeps in test/ (issue 11: "count the sleeps before and after").
//
// A site is every setTimeout( a test file calls itself (a ManualScheduler's
// scheduler.setTimeout is not one), and every call of a helper whose body is a
// sleep (`const sleep = (ms) => new Promise((r) => setTimeout(r, ms))`, also
// imported ones); the helper's own definition is not a site. setImmediate is a
// turn of the event loop, not a sleep. Each site is classified by the table
// below (the first row of its file that matches):
//   a      a fixed sleep that waits for something to be ready (should wait for the event)
//   poll   the interval of a loop that polls a condition with a deadline (waits for the condition, not a time)
//   b      waits for time to pass that a scheduler could drive (a timeout, a retry, a delay in a fake)
//   c      deliberate real time (a random kill point, a quiet window against a real process, a real daemon's timer)
//   timer  not a wait: a deadline that bounds a wait on an event, a scheduled kill, a fake's own timer
//   ?      not in the table: classify it
// Sleeps = a + poll + b + c.
//
//   node scripts/countSleeps.mjs          totals by class
//   node scripts/countSleeps.mjs --list   every site, with its class and file:line
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const TEST = join(ROOT, 'test');

/** [file (relative to test/), text the line contains (or, with 'line before', the line above it), class, why] */
const TABLE = [
  ['gateway/gateway.test.ts', 'setTimeout(r, 10)', 'poll', 'until(): polls a condition'],
  ['gateway/twoNetworks.test.ts', 'setTimeout(r, 20)', 'poll', 'until(): polls a condition'],
  ['gateway/signedCrossings.test.ts', 'setTimeout(r, 10)', 'poll', 'until(): polls a condition'],
  ['gateway/signedCrossings.test.ts', 'setTimeout(probe, 50)', 'poll', 'probes until the payment leg has subscribed'],
  ['mqtt/brokerQueue.test.ts', 'setTimeout(resolve, 200)', 'c', 'quiet window: no report beyond the queued ones arrives from the real broker'],
  ['mqtt/mutualTls.test.ts', 'setTimeout(r, 500)', 'c', 'quiet window: what the ACL forbids never arrives from the real broker'],
  ['daemon/stopPath.test.ts', 'setTimeout(r, 25)', 'poll', 'polls the status socket until the daemon answers'],
  ['daemon/stopPath.test.ts', 'Math.random()', 'c', 'SIGTERM at a random point of a real daemon'],
  ['daemon/readerInUsePcsc.test.ts', 'setTimeout(', 'timer', 'deadline / kill of a child process'],
  ['daemon/systemdNotify.test.ts', 'setTimeout(r, 20)', 'poll', 'polls the socket file / what socat received'],
  ['daemon/systemdNotify.test.ts', 'setTimeout(r, 100)', 'c', 'READY and WATCHDOG as two datagrams apart in time'],
  ['daemon/terminalRun.test.ts', 'setTimeout(r, 50)', 'poll', 'until(): polls a condition'],
  ['insurance/paymentRestarts.test.ts', "r('timeout')", 'timer', 'withTimeout(): a deadline on an event'],
  ['insurance/paymentRestarts.test.ts', 'rnd()', 'c', 'interruption at a random point'],
  ['insurance/paymentRestarts.test.ts', 'VOUCHER_TTL_MS', 'b', "the server's payment codes expiring"],
  ['sms/gammuSmsd.test.ts', 'setTimeout(r, 4000)', 'c', "quiet window of a real daemon and gammu-smsd (its SMS timer)"],
  ['sms/gammuSmsd.test.ts', 'setTimeout(r, 3500)', 'c', "a real daemon's modem retries counted over a window"],
  ['crash/crash.test.ts', 'sleep(30_000)', 'timer', 'deadline on the worker getting ready'],
  ['crash/crash.test.ts', 'random()', 'c', 'SIGKILL at a random point'],
  ['crash/deviceEventCrash.test.ts', 'SIGKILL', 'timer', 'a scheduled SIGKILL'],
  ['crash/deviceEventCrash.test.ts', 'sleep(5000)', 'timer', 'deadline on the board event'],
  ['crash/deviceEventCrash.test.ts', 'sleep(50)', 'a', 'lets the end ACK reach the board before the kill'],
  ['crash/sessionReportCrash.test.ts', 'reject(', 'timer', 'deadline on a board frame'],
  ['crash/sessionReportCrash.test.ts', 'sleep(5)', 'poll', 'polls the swipe outcome lines'],
  ['crash/sessionReportCrash.test.ts', 'sleep(20)', 'poll', 'polls the ledger for the end within the restart gap'],
  ['crash/sessionReportCrash.test.ts', 'sleep(300)', 'a', 'lets the closing daemon take the end before the kill'],
  ['crash/deviceEventWorker.ts', 'sleep(recordDelayMs)', 'c', 'widens the kill window between arrival and recording'],
  ['crash/workerDaemon.ts', 'sleep(', 'poll', 'polls output lines / ledger state'],
  ['readers/backendContract.test.ts', 'setTimeout(r, 5)', 'poll', 'polls until the use is closed'],
  ['pki/enrolRevoke.test.ts', 'setTimeout(r, 200)', 'poll', 'between connection attempts until the CRL is in force'],
  ['cli/readers.test.ts', 'sleep(', 'a', 'lets pcscd see the card removed'],
  ['sync/voucherClaim.test.ts', 'setTimeout(r, 10)', 'poll', 'polls subscribed()'],
  ['sync/drain.test.ts', 'setTimeout(r, 400)', 'b', "longer than the sync client's ack timeout"],
  ['sync/fleet.test.ts', 'setTimeout(r, 300)', 'c', 'paces swipe rounds against a real broker and server'],
  ['sync/batchClaim.test.ts', 'setTimeout(r, 10)', 'poll', 'polls connected()'],
  ['pcsc/foreignPcscd.test.ts', 'SIGKILL', 'timer', 'kill of a child process'],
  ['pcsc/virtualCard.test.ts', 'reject(', 'timer', 'deadline on an answer'],
  ['pcsc/virtualCard.test.ts', 'setTimeout(resolve, 5)', 'poll', 'until(): polls a condition'],
  ['pcsc/pcscReader.test.ts', "resolve('hung')", 'timer', 'deadline: a transmit that hangs'],
  ['pcsc/pcscReader.test.ts', 'setTimeout(resolve, 100)', 'c', 'traffic runs before pcscd is SIGKILLed'],
  ['pcsc/pcscReader.test.ts', 'setTimeout(resolve, 1500)', 'c', 'real pcscd left down while the reader retries'],
  ['pcsc/pcscReader.test.ts', 'setTimeout(resolve, 500)', 'c', 'quiet window: a filter matching nothing never binds (real pcscd)'],
  ['serial/faults.test.ts', 'setTimeout(res, 400)', 'a', "lets the board's late answer drain"],
  ['serial/faults.test.ts', 'setTimeout(res, 150)', 'c', 'quiet window: no event delivered twice after a replug'],
  ['serial/rig.ts', 'timed out waiting', 'poll', 'waitFor(): polls a condition', 'line before'],
  ['support/process.ts', 'setTimeout(r, 25)', 'poll', 'polls a port until it accepts'],
  ['support/process.ts', 'setTimeout(', 'timer', 'deadline on a child process'],
  ['support/pcscd.ts', 'sleep(10)', 'poll', 'waitUntil(): polls a condition'],
  ['support/pcscd.ts', 'setTimeout(', 'timer', 'deadline on pcscd'],
  ['support/postgres.ts', 'setTimeout(r, 50)', 'poll', 'polls until the cluster process exits'],
  ['support/insuranceJourney.ts', 'setTimeout(r, 10)', 'poll', 'waitUntil(): polls a condition'],
  ['support/syncHarness.ts', 'setTimeout(r, 20)', 'poll', 'waitFor(): polls a condition'],
];

const CLASSES = ['a', 'poll', 'b', 'c', 'timer', '?'];

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'fixtures' ? [] : files(path);
    return /\.(ts|mts|js|mjs)$/.test(name) ? [path] : [];
  });
}

/** setTimeout called by the file itself, not a method of a scheduler object */
const OWN_SET_TIMEOUT = /(?<![.\w])setTimeout\(/;
/** A promise resolved by a timer: the body of a sleep */
const SLEEP_BODY = /setTimeout\(\s*(r|res|resolve)\s*,/;

/** Names of the sleep helpers a file defines (and which it exports) */
function helpersOf(lines) {
  const names = new Map();
  lines.forEach((line, i) => {
    const inline = SLEEP_BODY.test(line);
    const bodyBelow = !inline && SLEEP_BODY.test(lines[i + 1] ?? '') && /^\s*(export\s+)?(async\s+)?function\s/.test(line);
    if (!inline && !bodyBelow) return;
    const m = /(?:const|function)\s+(\w+)/.exec(line);
    if (m && (/=>\s*new Promise/.test(line) || /function\s/.test(line))) names.set(m[1], bodyBelow ? [i, i + 1] : [i]);
  });
  return names;
}

const all = files(TEST);
const defined = new Map(all.map((path) => [path, helpersOf(readFileSync(path, 'utf8').split('\n'))]));
const sites = [];
for (const path of all) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const rel = relative(TEST, path);
  const helpers = new Map(defined.get(path));
  // sleep helpers imported from another test file
  for (const line of lines) {
    const m = /import\s*\{([^}]*)\}\s*from\s*'(\.[^']+)'/.exec(line);
    if (!m) continue;
    const from = resolve(dirname(path), m[2]).replace(/\.js$/, '.ts');
    for (const name of m[1].split(',').map((s) => s.trim().replace(/^type\s+/, ''))) {
      if (defined.get(from)?.has(name)) helpers.set(name, []);
    }
  }
  const definitionLines = new Set([...helpers.values()].flat());
  lines.forEach((line, i) => {
    if (/^\s*(\/\/|\*)/.test(line)) return;
    const isDefinition = definitionLines.has(i);
    let found = 0;
    if (OWN_SET_TIMEOUT.test(line) && !isDefinition) found = 1;
    for (const name of helpers.keys()) {
      if (isDefinition && helpers.get(name).includes(i)) continue;
      found += (line.match(new RegExp(`(?<![.\\w])${name}\\(`, 'g')) ?? []).length;
    }
    for (let k = 0; k < found; k++) {
      const row = TABLE.find(([file, text, , , where]) => file === rel && (where === 'line before' ? (lines[i - 1] ?? '') : line).includes(text));
      sites.push({ file: rel, line: i + 1, text: line.trim(), cls: row?.[2] ?? '?', why: row?.[3] ?? '' });
    }
  });
}

const stale = TABLE.filter((row) => !sites.some((site) => site.file === row[0] && site.why === row[3] && site.cls === row[2]));
for (const row of stale) console.log(`table row matches no site (remove it): ${JSON.stringify(row)}`);
const totals = Object.fromEntries(CLASSES.map((c) => [c, sites.filter((s) => s.cls === c).length]));
const sleeps = totals.a + totals.poll + totals.b + totals.c;
if (process.argv.includes('--list')) {
  for (const s of sites) console.log(`${s.cls.padEnd(5)} test/${s.file}:${s.line}  ${s.why ? `(${s.why}) ` : ''}${s.text.slice(0, 110)}`);
  console.log('');
}
console.log(`sleeps in test/: ${sleeps} (a readiness ${totals.a}, poll ${totals.poll}, b scheduler-drivable ${totals.b}, c deliberate real time ${totals.c}); not waits (timer) ${totals.timer}; unclassified ${totals['?']}`);
console.log(`files with a sleep: ${new Set(sites.filter((s) => s.cls !== 'timer').map((s) => s.file)).size}`);
