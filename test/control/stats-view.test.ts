import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotStats } from '../../src/control/stats-view.js';
import { createStats, STAT, SUMMED_STATS, WORKER_STRIDE } from '../../src/dataplane/layout.js';
import { DropReason } from '../../src/wire/drop-reason.js';

test('snapshotStats: every summed counter is totalled over the workers by its own slot', () => {
  const { buffer, layout } = createStats(2, 4);
  const s = new Float64Array(buffer);
  // Distinct values per counter and worker, so a counter read from another slot shows.
  for (let w = 0; w < 2; w++) {
    for (const [, slot] of SUMMED_STATS) s[w * WORKER_STRIDE + slot] = (slot + 1) * (w === 0 ? 1 : 1000);
    s[w * WORKER_STRIDE + STAT.HEARTBEAT] = 7;
    s[w * WORKER_STRIDE + STAT.RESTARTS] = w + 2;
    s[w * WORKER_STRIDE + STAT.DROPS + DropReason.NO_ROUTE] = 5;
  }
  const snap = snapshotStats(buffer, layout);
  assert.deepEqual(Object.keys(snap.totals), SUMMED_STATS.map(([n]) => n));
  for (const [n, slot] of SUMMED_STATS) {
    assert.equal(snap.totals[n], (slot + 1) * 1001, n);
    assert.equal(snap.perWorker[1]![n], (slot + 1) * 1000, n);
  }
  assert.equal(snap.totals.keep_warm_turns, (STAT.KEEP_WARM_TURNS + 1) * 1001);
  // Per worker only: restarts; never summed: the heartbeat.
  assert.deepEqual(snap.perWorker.map((w) => w.restarts), [2, 3]);
  assert.equal(snap.totals.restarts, undefined);
  assert.equal(snap.totals.heartbeat, undefined);
  assert.deepEqual(snap.perWorker.map((w) => w.dropped), [5, 5]);
});
