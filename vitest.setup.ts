// Some tests run the compiled CLI or workers as real processes: build once, up front.
import { execSync } from 'node:child_process';

export default function setup(): void {
  execSync('npx tsc -p tsconfig.build.json', { stdio: 'inherit' });
}
