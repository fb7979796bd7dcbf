// Runs tally commands in one process through the compiled CLI's main(), as the entry point does, and prints
// what each answered as JSON: test/cli/storageFaults.test.ts starts it inside a mount namespace (a full
// tmpfs, a read-only bind mount) so that every command meets the fault. argv[2]: the compiled tally.js;
// argv[3]: a JSON array of argument lists.
const { main } = await import(process.argv[2]);
const results = [];
for (const args of JSON.parse(process.argv[3])) {
  const out = [];
  const err = [];
  let code;
  try {
    code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  } catch (e) {
    // what the entry point prints for an error main() lets through
    err.push(`tally: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    code = 70;
  }
  results.push({ args, code, out: out.join('\n'), err: err.join('\n') });
}
process.stdout.write(JSON.stringify(results));
