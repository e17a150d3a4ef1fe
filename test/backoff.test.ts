import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/backoff.js';

test('Backoff: doubles from min to max, each delay within ±20%, reset starts over', () => {
  const mid = new Backoff(100, 1000, () => 0.5);
  assert.deepEqual(Array.from({ length: 6 }, () => mid.next()), [100, 200, 400, 800, 1000, 1000]);
  mid.reset();
  assert.equal(mid.next(), 100);
  assert.deepEqual([new Backoff(1000, 8000, () => 0).next(), new Backoff(1000, 8000, () => 0.999999).next()], [800, 1200]);
  const r = new Backoff(200, 5000);
  for (let i = 0; i < 50; i++) {
    const d = r.next();
    assert.ok(d >= 160 && d <= 6000, `${d} out of bounds`);
  }
});
