import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

const ip = parseIpv4;

/** Whether `p` settles within `ms` (the commit poll is 2 ms, so 40 ms is many polls). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(() => {
    done = true;
  });
  await sleep(ms);
  return done;
}

function twoPeers(w: RouteTableWriter): [number, number] {
  const a = w.upsertPeer('a', { addr: ip('192.168.0.1'), port: 8285, subnet: ip('10.244.1.0'), prefixLen: 24 });
  const b = w.upsertPeer('b', { addr: ip('192.168.0.2'), port: 8285, subnet: ip('10.244.2.0'), prefixLen: 24 });
  return [a, b];
}

test('a reader that has not refreshed keeps seeing the old generation', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const r = new RouteTableReader(w.buffer, 0);
  const [a, b] = twoPeers(w);
  w.addRoute(ip('10.0.0.0'), 8, a);
  assert.equal(await w.commit(), 1);
  assert.equal(r.epoch, 0);
  assert.equal(r.lookup(ip('10.1.1.1')), -1, 'epoch 0 is the empty table');
  r.refresh();
  assert.equal(r.epoch, 1);
  assert.equal(r.lookup(ip('10.1.1.1')), a);

  w.addRoute(ip('10.0.0.0'), 8, b);
  w.setLocalSubnet(ip('10.9.0.0'), 16);
  assert.equal(await w.commit(), 2);
  assert.equal(w.epoch, 2);
  // Not refreshed: still epoch 1, whole and unchanged.
  assert.equal(r.epoch, 1);
  assert.equal(r.lookup(ip('10.1.1.1')), a);
  assert.equal(r.isLocal(ip('10.9.0.1')), false);
  r.refresh();
  assert.equal(r.lookup(ip('10.1.1.1')), b);
  assert.equal(r.isLocal(ip('10.9.0.1')), true);
  r.release();
});

test('commit() waits for a lagging reader and resolves once it refreshes', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const fresh = new RouteTableReader(w.buffer, 1);
  const lagging = new RouteTableReader(w.buffer, 2);
  const [a] = twoPeers(w);
  assert.equal(await w.commit(), 1, 'both readers acked epoch 0 when created');
  fresh.refresh();
  w.addRoute(ip('10.0.0.0'), 8, a);
  const p = w.commit();
  assert.equal(await settlesWithin(p, 40), false, 'lagging reader (epoch 0) may still read the copy commit 2 writes');
  assert.equal(w.epoch, 1);
  assert.equal(lagging.lookup(ip('10.1.1.1')), -1, 'its copy was not touched');
  // A reader joining now acks the published epoch and does not block.
  const late = new RouteTableReader(w.buffer, 3);
  assert.equal(late.epoch, 1);
  lagging.refresh();
  assert.equal(await p, 2);
  fresh.refresh();
  lagging.refresh();
  late.refresh();
  for (const r of [fresh, lagging, late]) assert.equal(r.lookup(ip('10.1.1.1')), a);
  for (const r of [fresh, lagging, late]) r.release();
});

test('a commit that finds a reader behind calls the wake hook once; one with every reader current does not', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  let wakes = 0;
  w.setWake(() => { wakes++; });
  const r = new RouteTableReader(w.buffer, 0);
  const [a] = twoPeers(w);
  assert.equal(await w.commit(), 1, 'the reader acked epoch 0 when created');
  assert.equal(wakes, 0);
  w.addRoute(ip('10.0.0.0'), 8, a);
  const p = w.commit();
  await sleep(20);
  assert.equal(wakes, 1, 'the reader is at epoch 0 while epoch 1 is published');
  r.refresh();
  assert.equal(await p, 2);
  assert.equal(wakes, 1);
  r.release();
});

test('releaseReader (dead worker) and release() unblock commit()', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const dead = new RouteTableReader(w.buffer, 7);
  const leaving = new RouteTableReader(w.buffer, 8);
  await w.commit(); // epoch 1; nobody refreshes
  const p = w.commit();
  assert.equal(await settlesWithin(p, 30), false);
  w.releaseReader(7);
  assert.equal(await settlesWithin(p, 30), false, 'slot 8 still lags');
  leaving.release();
  assert.equal(await p, 2);
  assert.equal(dead.epoch, 0);
  assert.throws(() => w.releaseReader(64), RangeError);
});

test('commits are serialized and resolve in order', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const [a, b] = twoPeers(w);
  w.addRoute(0, 0, a);
  const p1 = w.commit();
  w.addRoute(0, 0, b); // lands in commit 1 too: the build runs after this line
  const p2 = w.commit();
  assert.deepEqual(await Promise.all([p1, p2]), [1, 2]);
  const r = new RouteTableReader(w.buffer, 0);
  assert.equal(r.epoch, 2);
  assert.equal(r.lookup(ip('1.2.3.4')), b);
  r.release();
});
