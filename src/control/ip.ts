/**
 * iproute2 from the control plane (never on the packet path). Every call
 * is bounded in time; a failure names the command and what it printed.
 */
import { execFile } from 'node:child_process';
import { WeftError } from '../errors.js';

const IP_TIMEOUT_MS = 10_000;

export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOIPROUTE' : 'EIPROUTE';
        const hint = code === 'ENOIPROUTE' ? ' (install the Debian package iproute2)' : '';
        reject(new WeftError(code, `ip ${args.join(' ')} failed${hint}: ${String(stderr || err.message).trim()}`));
        return;
      }
      resolve(stdout);
    });
  });
}
