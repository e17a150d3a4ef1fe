#!/usr/bin/env node
// flannel's /opt/bin/install-conf SRC DEST (the image links it there). It
// loads only its own module, not the whole CLI: init containers start it cold.
import { runInstallConf } from '../dist/src/cli/install-conf.js';

runInstallConf(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`install-conf: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
