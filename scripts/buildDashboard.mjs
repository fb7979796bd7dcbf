// Bundles the dashboard (web/dashboard) with esbuild into dist/dashboard: one minified app.js with uPlot inside,
// app.css (uPlot's and ours), index.html. Run by `npm run build`; the browser tests call buildDashboard() too.
// Nothing is fetched at run time: the page loads only these three files from the server that serves it.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

export async function buildDashboard(outDir = `${root}dist/dashboard/`) {
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [`${root}web/dashboard/app.ts`],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome90', 'firefox88'],
    outfile: `${outDir}app.js`,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const require = createRequire(import.meta.url);
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  writeFileSync(`${outDir}app.css`, `${uplotCss}\n${readFileSync(`${root}web/dashboard/app.css`, 'utf8')}`);
  copyFileSync(`${root}web/dashboard/index.html`, `${outDir}index.html`);
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = await buildDashboard(process.argv[2]);
  console.log(`dashboard built in ${dir}`);
}
