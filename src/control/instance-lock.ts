/**
 * One weft per node: a lock file beside the control socket holding the
 * daemon's pid, created exclusively. A lock whose pid no longer runs (or
 * runs something else) is stale and taken over; a live one stops start-up
 * with its pid. Node has no flock(2), hence the pid check.
 */
import { mkdirSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError } from '../errors.js';

export interface InstanceLock {
  readonly path: string;
  release(): void;
}

/** Whether `pid` runs a weft (or node) process, from /proc; false when it cannot be told. */
function runsWeft(pid: number, procRoot: string): boolean {
  try {
    const cmd = readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return /weft|flanneld|node/.test(cmd);
  } catch {
    return false;
  }
}

export function acquireInstanceLock(controlSocket: string, procRoot = '/proc', pid = process.pid): InstanceLock {
  const path = `${controlSocket}.lock`;
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WeftError('ELOCK', `cannot create the lock ${path} (beside --control-socket): ${(e as Error).message}`, { cause: e });
      }
      const held = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(held) && held > 0 && held !== pid && runsWeft(held, procRoot)) {
        throw new WeftError('ELOCKED', `another weft runs on this node (pid ${held}, lock ${path}): stop it first; `
          + 'two daemons would share one lease, one TUN and one UDP port');
      }
      unlinkSync(path); // stale: its process is gone
      continue;
    }
    writeSync(fd, `${pid}\n`);
    closeSync(fd);
    return {
      path,
      release: () => {
        try {
          if (Number(readFileSync(path, 'utf8').trim()) === pid) unlinkSync(path);
        } catch { /* already gone */ }
      },
    };
  }
  throw new WeftError('ELOCK', `cannot take the lock ${path}: another process keeps recreating it`);
}
