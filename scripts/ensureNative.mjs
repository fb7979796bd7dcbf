// pcsclite is an optional dependency: on a fresh machine `npm install` runs
// before scripts/setup.sh has installed libpcsclite-dev, so its build fails and
// npm leaves it out. Once the system packages are there, install it for real.
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
function loads(name) {
  try {
    require(name);
    return true;
  } catch {
    return false;
  }
}

if (!loads('pcsclite')) {
  console.log('ensure-native: pcsclite missing or unbuilt; installing it now that libpcsclite-dev is present');
  execSync('npm install --no-audit --no-fund --include=optional', { stdio: 'inherit' });
  execSync('npm rebuild pcsclite', { stdio: 'inherit' });
  if (!loads('pcsclite')) {
    console.error('ensure-native: pcsclite still does not load; run scripts/setup.sh as root and retry');
    process.exit(1);
  }
}
for (const name of ['better-sqlite3', '@serialport/bindings-cpp']) {
  if (!loads(name)) {
    console.log(`ensure-native: ${name} does not load; rebuilding`);
    execSync(`npm rebuild ${name}`, { stdio: 'inherit' });
  }
}
