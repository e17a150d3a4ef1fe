/** Builds eio-preload.c (sendmmsg fails with EIO on a UDP_SEGMENT message) into `dir`; the .so's path. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled tests live in dist/test/helpers; the C source stays beside the TypeScript.
const SOURCE = fileURLToPath(new URL('../../../test/helpers/eio-preload.c', import.meta.url));

export function buildEioPreload(dir: string): string {
  const so = join(dir, 'eio-preload.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', so, SOURCE, '-ldl'], { stdio: 'pipe' });
  return so;
}
