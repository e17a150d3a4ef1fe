#!/usr/bin/env node
// The CLI is compiled TypeScript; `npm ci` builds it (the prepare script).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`weft: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
