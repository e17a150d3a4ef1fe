import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRenewer, RENEW_RETRY_MAX_MS } from '../../src/control/renewer.js';
import { WeftError } from '../../src/errors.js';
import type { Lease } from '../../src/subnet/lease.js';
import { parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { captureLog } from '../helpers/log.js';

const lease = (expiration: number): Lease => ({ subnet: parseIpv4Prefix('10.244.1.0/24'), attrs: { publicIp: 1, publicIpv6: null }, expiration });

/** Lets the renewer's promise callbacks run between timer steps. */
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

test('renewal during an outage backs off 1 s → 5 min with jitter and logs the outage once (regression: retried every second)', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    const calls: number[] = [];
    let failFor = 14;
    const log = captureLog();
    const r = new LeaseRenewer({
      renew: async (l) => {
        calls.push(Date.now());
        if (failFor-- > 0) throw new WeftError('EETCD', 'etcd at http://10.0.0.1:2379 did not answer');
        return lease(l.expiration + 86_400_000);
      },
      marginMs: 60 * 60_000, log, onRenewed: () => undefined, onRevoked: () => assert.fail('not revoked'), random: () => 0.5,
    });
    r.start(lease(86_400_000));
    mock.timers.tick(86_400_000 - 3_600_000);
    await settle();
    for (let i = 0; i < 5000 && calls.length < 15; i++) {
      mock.timers.tick(1000);
      await settle();
    }
    assert.equal(calls.length, 15, 'fourteen failures then the success');
    assert.equal(calls[0], 86_400_000 - 3_600_000, 'first renewal at expiry − margin');
    const gaps = calls.slice(1).map((t, i) => t - calls[i]!);
    // 1, 2, 4, … s (random 0.5 = no jitter), capped at 5 min.
    assert.deepEqual(gaps.slice(0, 5), [1000, 2000, 4000, 8000, 16000]);
    assert.ok(gaps.every((g) => g <= RENEW_RETRY_MAX_MS * 1.2), `bounded: ${gaps.join(' ')}`);
    assert.equal(gaps.at(-1), RENEW_RETRY_MAX_MS);
    assert.deepEqual(log.lines.filter((l) => l.startsWith('W')).length, 1, log.lines.join('\n'));
    assert.match(log.lines.at(-1)!, /^I lease 10\.244\.1\.0\/24 renewed after 14 failed attempts/);
    assert.deepEqual(r.counts, { ok: 1, failed: 14 });
    r.stop();
  } finally {
    mock.timers.reset();
  }
});

test('renewal: jitter spreads the retries ±20%; a changed error is logged again; a revoked lease ends it', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    const calls: number[] = [];
    const errors = ['timeout', 'timeout', 'connection refused'];
    let revoked = '';
    const log = captureLog();
    const r = new LeaseRenewer({
      renew: async () => {
        calls.push(Date.now());
        const e = errors.shift();
        if (e !== undefined) throw new WeftError('EETCD', e);
        throw new WeftError('EREVOKED', 'the key is gone');
      },
      marginMs: 0, log, onRenewed: () => undefined, onRevoked: (e) => { revoked = e.message; }, random: () => 1,
    });
    r.start(lease(5000));
    for (let i = 0; i < 300 && revoked === ''; i++) {
      mock.timers.tick(100);
      await settle();
    }
    assert.deepEqual(calls.slice(1).map((t, i) => t - calls[i]!), [1200, 2400, 4800], 'each delay +20% (random 1)');
    assert.equal(log.lines.filter((l) => l.startsWith('W')).length, 2, 'timeout once, connection refused once');
    assert.equal(revoked, 'the key is gone');
  } finally {
    mock.timers.reset();
  }
});
