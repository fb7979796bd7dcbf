// npm install's postinstall: pcsclite is an optional dependency, so when
// libpcsclite-dev is missing its build fails and npm drops it without a word.
// Say so here, where the person running npm install sees it. Never fails the
// install: the demo, the serial board and most tests run without PC/SC.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require('pcsclite');
} catch (err) {
  const why = err && err.code === 'MODULE_NOT_FOUND' ? 'was not installed (its build needs libpcsclite-dev)' : `does not load (${String(err && err.message).split('\n')[0]})`;
  console.error(
    [
      '',
      `tallystick: pcsclite, the PC/SC card reader addon, ${why}.`,
      '  PC/SC readers (tally ... --reader pcsc, reader.backend: pcsc) do not work until it is built:',
      '    bash scripts/setup.sh      (as root: installs libpcsclite-dev, pcscd and the rest the tests use)',
      '    npm run ensure-native      (then builds pcsclite)',
      '  or just: apt-get install -y libpcsclite-dev pcscd && npm install',
      '  npm run demo and the serial board need neither.',
      '',
    ].join('\n'),
  );
}
