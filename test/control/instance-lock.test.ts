import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireInstanceLock } from '../../src/control/instance-lock.js';
import { isWeftError } from '../../src/errors.js';

test('instance lock: taken, refused to a second daemon while its holder runs, released, stale ones taken over', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-lock-'));
  try {
    const sock = join(dir, 'run', 'weft.sock');
    const a = acquireInstanceLock(sock, '/proc', process.pid);
    assert.equal(readFileSync(`${sock}.lock`, 'utf8'), `${process.pid}\n`);
    // Another pid asks while we (a node process) hold it.
    assert.throws(() => acquireInstanceLock(sock, '/proc', process.pid + 1), (e: unknown) =>
      isWeftError(e, 'ELOCKED') && e.message.includes(`pid ${process.pid}`) && e.message.includes('stop it first'));
    a.release();
    assert.equal(existsSync(`${sock}.lock`), false);
    // A lock left by a process that is gone is stale.
    writeFileSync(`${sock}.lock`, '999999999\n');
    const b = acquireInstanceLock(sock);
    assert.equal(readFileSync(`${sock}.lock`, 'utf8'), `${process.pid}\n`);
    b.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
