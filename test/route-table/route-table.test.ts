import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteTableReader, RouteTableWriter, peerHashBucket } from '../../src/route-table/index.js';
import { isWeftError } from '../../src/errors.js';
import { formatIpv4, parseIpv4, prefixMask } from '../../src/wire/ipv4-addr.js';
import { Prng } from '../helpers/prng.js';
import { SlowRouteTable } from '../helpers/slow-route-table.js';

const ip = parseIpv4;

/** Commit, then let the (single, same-thread) reader pick it up. */
async function publish(w: RouteTableWriter, r: RouteTableReader): Promise<void> {
  await w.commit();
  r.refresh();
}

function randomLen(rng: Prng): number {
  const x = rng.next();
  if (x < 0.01) return 0;
  if (x < 0.12) return 32;
  if (x < 0.5) return 8 + rng.int(21); // 8..28, where real tables live
  return 1 + rng.int(31);
}

function lookupAddrs(rng: Prng, slow: SlowRouteTable, n: number): number[] {
  const out: number[] = [];
  const entries = slow.entries();
  while (out.length < n) {
    const kind = rng.int(3);
    if (kind === 0 || entries.length === 0) {
      out.push(rng.u32());
      continue;
    }
    const r = rng.pick(entries);
    const m = prefixMask(r.len);
    if (kind === 1) {
      out.push((r.addr | (rng.u32() & ~m)) >>> 0);
    } else {
      // Edges: network, broadcast, and one either side of the prefix.
      const bcast = (r.addr | ~m) >>> 0;
      out.push(r.addr, bcast, (r.addr - 1) >>> 0, (bcast + 1) >>> 0);
    }
  }
  return out;
}

function compare(r: RouteTableReader, slow: SlowRouteTable, addrs: readonly number[], what: string): void {
  let mismatches = 0;
  let first = '';
  for (const a of addrs) {
    const want = slow.lookup(a);
    const got = r.lookup(a);
    if (want !== got) {
      if (mismatches === 0) first = `${formatIpv4(a)}: trie ${got}, slow ${want}`;
      mismatches++;
    }
  }
  assert.equal(mismatches, 0, `${what}: ${mismatches} of ${addrs.length} lookups differ, first ${first}`);
}

test('trie agrees with the slow table on 10 000 random prefixes, deletes and replaces', async () => {
  const rng = new Prng(0x5eed1234);
  const w = RouteTableWriter.create({ maxRoutes: 20000, maxPeers: 300 });
  const r = new RouteTableReader(w.buffer, 0);
  const slow = new SlowRouteTable();
  const slots: number[] = [];
  const slotByPeer = new Map<number, number>();
  let nextPeer = 0;
  const addPeer = (): number => {
    const i = nextPeer++;
    const subnet = (ip('100.64.0.0') + i * 256) >>> 0;
    const s = w.upsertPeer(`peer-${i}`, { addr: (ip('192.168.0.0') + i) >>> 0, port: 8285, subnet, prefixLen: 24 });
    slow.set(subnet, 24, s);
    slots.push(s);
    slotByPeer.set(i, s);
    return s;
  };
  for (let i = 0; i < 200; i++) addPeer();

  const inserted: { addr: number; len: number }[] = [];
  const clusters = [ip('10.244.0.0'), ip('10.245.0.0'), ip('172.16.0.0'), ip('192.168.77.0')];
  for (let i = 0; i < 10000; i++) {
    const x = rng.next();
    let addr: number;
    let len: number;
    if (x < 0.3 && inserted.length > 0) {
      // Nested inside an existing prefix.
      const p = rng.pick(inserted);
      len = p.len === 32 ? 32 : p.len + 1 + rng.int(32 - p.len);
      addr = (p.addr | (rng.u32() & ~prefixMask(p.len))) >>> 0;
    } else if (x < 0.4 && inserted.length > 0) {
      // Duplicate: same prefix, new value.
      const p = rng.pick(inserted);
      addr = p.addr;
      len = p.len;
    } else if (x < 0.6) {
      // Clustered like flannel: lengths 16..32 inside a few /16s (and /8s),
      // so /16 branch nodes with both sides populated are common.
      const base = rng.pick(clusters);
      len = 16 + rng.int(17);
      addr = (base | (rng.u32() & (base & 0xffff ? 0xff : 0xffff))) >>> 0;
      if (base & 0xffff) len = Math.max(len, 24);
    } else {
      addr = rng.u32();
      len = randomLen(rng);
    }
    addr = (addr & prefixMask(len)) >>> 0;
    const v = rng.pick(slots);
    w.addRoute(addr, len, v);
    slow.set(addr, len, v);
    inserted.push({ addr, len });
  }
  assert.equal(w.routeCount(), slow.size);
  await publish(w, r);
  assert.equal(r.routeCount, slow.size);
  const addrs = lookupAddrs(rng, slow, 10000);
  compare(r, slow, addrs, 'initial');

  for (let round = 0; round < 3; round++) {
    const entries = slow.entries();
    for (let i = 0; i < 500; i++) {
      const e = rng.pick(entries);
      assert.equal(w.deleteRoute(e.addr, e.len), true);
      assert.equal(slow.delete(e.addr, e.len), true);
    }
    assert.equal(w.deleteRoute(ip('255.255.255.255'), 31) || w.deleteRoute(1, 32), false);
    for (let i = 0; i < 500; i++) {
      const e = rng.pick(slow.entries());
      const v = rng.pick(slots);
      w.addRoute(e.addr, e.len, v);
      slow.set(e.addr, e.len, v);
    }
    for (let i = 0; i < 500; i++) {
      const len = randomLen(rng);
      const addr = (rng.u32() & prefixMask(len)) >>> 0;
      const v = rng.pick(slots);
      w.addRoute(addr, len, v);
      slow.set(addr, len, v);
    }
    // Remove a few peers: their subnet and every route to them go.
    for (let i = 0; i < 5; i++) {
      const k = rng.int(nextPeer);
      if (!w.removePeer(`peer-${k}`)) continue;
      const slot = slotByPeer.get(k) as number;
      slotByPeer.delete(k);
      slots.splice(slots.indexOf(slot), 1);
      for (const e of [...slow.entries()]) if (e.value === slot) slow.delete(e.addr, e.len);
    }
    while (slots.length < 200) addPeer();
    assert.equal(w.routeCount(), slow.size);
    await publish(w, r);
    compare(r, slow, addrs, `round ${round}, old addresses`);
    compare(r, slow, lookupAddrs(rng, slow, 10000), `round ${round}, new addresses`);
  }
  r.release();
});

test('empty table, /0 and /32 routes', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const r = new RouteTableReader(w.buffer, 3);
  assert.equal(r.lookup(ip('10.0.0.1')), -1);
  assert.equal(r.peerByAddr(0), -1);
  assert.equal(r.isLocal(0), false);
  const a = w.upsertPeer('a', { addr: ip('192.168.1.2'), port: 8285, subnet: ip('10.244.1.0'), prefixLen: 24 });
  const b = w.upsertPeer('b', { addr: ip('192.168.1.3'), port: 8285, subnet: ip('10.244.2.0'), prefixLen: 24 });
  w.addRoute(0, 0, a);
  w.addRoute(ip('10.244.1.77'), 32, b);
  await publish(w, r);
  assert.equal(r.lookup(ip('8.8.8.8')), a);
  assert.equal(r.lookup(ip('10.244.1.76')), a);
  assert.equal(r.lookup(ip('10.244.1.77')), b);
  assert.equal(r.lookup(ip('10.244.2.1')), b);
  assert.equal(r.lookup(0xffffffff), a);
  assert.equal(w.deleteRoute(0, 0), true);
  await publish(w, r);
  assert.equal(r.lookup(ip('8.8.8.8')), -1);
  r.release();
});

test('peer data sits in parallel arrays; slots are stable and reused', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 4 });
  const r = new RouteTableReader(w.buffer, 0);
  const mac = Uint8Array.of(0xc6, 0xd2, 0x32, 0x6f, 0x8f, 0x44);
  const a = w.upsertPeer('10.244.1.0/24', { addr: ip('192.168.64.3'), port: 8472, subnet: ip('10.244.1.9'), prefixLen: 24, mac });
  const b = w.upsertPeer('10.244.2.0/24', { addr: ip('192.168.64.4'), port: 8285, subnet: ip('10.244.2.0'), prefixLen: 24 });
  assert.deepEqual([a, b], [0, 1]);
  await publish(w, r);
  assert.equal(r.peerAddr[a], ip('192.168.64.3'));
  assert.equal(r.peerPort[a], 8472);
  assert.equal(r.peerSubnet[a], ip('10.244.1.0'), 'subnet is masked to its network');
  assert.equal(r.peerPrefixLen[a], 24);
  assert.deepEqual([...r.peerMac.subarray(a * 6, a * 6 + 6)], [...mac]);
  assert.deepEqual([...r.peerMac.subarray(b * 6, b * 6 + 6)], [0, 0, 0, 0, 0, 0]);
  assert.equal(r.peerSlots, 2);

  // Replacing keeps the slot and moves the subnet route.
  assert.equal(w.upsertPeer('10.244.1.0/24', { addr: ip('192.168.64.9'), port: 8472, subnet: ip('10.244.7.0'), prefixLen: 24 }), a);
  // An extra route to b goes away with b.
  w.addRoute(ip('172.16.0.0'), 12, b);
  await publish(w, r);
  assert.equal(r.lookup(ip('10.244.1.5')), -1);
  assert.equal(r.lookup(ip('10.244.7.5')), a);
  assert.equal(r.lookup(ip('172.20.1.1')), b);
  assert.equal(r.peerByAddr(ip('192.168.64.3')), -1);
  assert.equal(r.peerByAddr(ip('192.168.64.9')), a);
  assert.deepEqual([...r.peerMac.subarray(a * 6, a * 6 + 6)], [0, 0, 0, 0, 0, 0], 'mac cleared when absent');

  assert.equal(w.removePeer('10.244.2.0/24'), true);
  assert.equal(w.removePeer('10.244.2.0/24'), false);
  assert.equal(w.routeCount(), 1);
  await publish(w, r);
  assert.equal(r.lookup(ip('172.20.1.1')), -1);
  assert.equal(r.lookup(ip('10.244.2.1')), -1);
  assert.equal(r.peerByAddr(ip('192.168.64.4')), -1);
  assert.equal(r.peerAddr[b], 0, 'a freed slot reads as zeros');

  const c = w.upsertPeer('10.244.3.0/24', { addr: ip('192.168.64.5'), port: 8285, subnet: ip('10.244.3.0'), prefixLen: 24 });
  assert.equal(c, b, 'freed slot is reused');
  assert.equal(w.peerCount(), 2);
  assert.throws(() => w.addRoute(ip('1.0.0.0'), 8, 3), RangeError);
  r.release();
});

test('peerByAddr finds peers whose addresses share a hash bucket', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 8 });
  const hashMask = 15; // 2 x maxPeers buckets
  // Collect addresses per bucket; use the last bucket so probes wrap to 0.
  const byBucket = new Map<number, number[]>();
  for (let a = ip('10.0.0.1'); byBucket.get(hashMask)?.length !== 6; a++) {
    const b = peerHashBucket(a, hashMask);
    const list = byBucket.get(b) ?? [];
    list.push(a);
    byBucket.set(b, list);
  }
  const colliding = byBucket.get(hashMask) as number[];
  const wrapped = (byBucket.get(0) as number[])[0] as number; // lives where the chain wraps to
  const peers = [...colliding.slice(0, 5), wrapped];
  const r = new RouteTableReader(w.buffer, 1);
  const slots = peers.map((addr, i) =>
    w.upsertPeer(`p${i}`, { addr, port: 8285, subnet: ip('10.244.0.0') + i * 256, prefixLen: 24 }),
  );
  await publish(w, r);
  peers.forEach((addr, i) => assert.equal(r.peerByAddr(addr), slots[i], formatIpv4(addr)));
  assert.equal(r.peerByAddr(colliding[5] as number), -1, 'colliding stranger is not a peer');
  // Removing one in the middle of the chain must not cut off the rest.
  w.removePeer('p1');
  await publish(w, r);
  assert.equal(r.peerByAddr(peers[1] as number), -1);
  for (const i of [0, 2, 3, 4, 5]) assert.equal(r.peerByAddr(peers[i] as number), slots[i]);
  r.release();
});

test('two peers with one PublicIP: peerByAddr answers the lower slot', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 8, maxPeers: 4 });
  const r = new RouteTableReader(w.buffer, 0);
  w.upsertPeer('old', { addr: ip('192.168.1.1'), port: 8285, subnet: ip('10.244.1.0'), prefixLen: 24 });
  w.upsertPeer('new', { addr: ip('192.168.1.1'), port: 8285, subnet: ip('10.244.2.0'), prefixLen: 24 });
  await publish(w, r);
  assert.equal(r.peerByAddr(ip('192.168.1.1')), 0);
  w.removePeer('old');
  await publish(w, r);
  assert.equal(r.peerByAddr(ip('192.168.1.1')), 1);
  r.release();
});

test('isLocal follows the local subnet of the generation', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 8, maxPeers: 4 });
  const r = new RouteTableReader(w.buffer, 0);
  assert.equal(r.localLen, -1);
  assert.equal(r.isLocal(ip('10.244.1.1')), false, 'no local subnet yet');
  w.setLocalSubnet(ip('10.244.1.1'), 24);
  await publish(w, r);
  assert.equal(r.localNet, ip('10.244.1.0'));
  assert.equal(r.localLen, 24);
  assert.equal(r.isLocal(ip('10.244.1.0')), true);
  assert.equal(r.isLocal(ip('10.244.1.255')), true);
  assert.equal(r.isLocal(ip('10.244.0.255')), false);
  assert.equal(r.isLocal(ip('10.244.2.0')), false);
  w.setLocalSubnet(ip('255.255.255.255'), 32);
  await publish(w, r);
  assert.equal(r.isLocal(0xffffffff), true);
  assert.equal(r.isLocal(0xfffffffe), false);
  w.setLocalSubnet(0, 0);
  await publish(w, r);
  assert.equal(r.isLocal(ip('1.2.3.4')), true);
  r.release();
});

test('capacity is fixed at create; exceeding it throws EROUTEFULL naming the option', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 3, maxPeers: 2 });
  const a = w.upsertPeer('a', { addr: 1, port: 1, subnet: ip('10.0.1.0'), prefixLen: 24 });
  w.upsertPeer('b', { addr: 2, port: 1, subnet: ip('10.0.2.0'), prefixLen: 24 });
  assert.throws(
    () => w.upsertPeer('c', { addr: 3, port: 1, subnet: ip('10.0.3.0'), prefixLen: 24 }),
    (e: unknown) => isWeftError(e, 'EROUTEFULL') && /2 peers/.test(e.message) && /maxPeers/.test(e.message),
  );
  assert.equal(w.peerCount(), 2);
  // Replacing an existing peer is not an addition.
  w.upsertPeer('b', { addr: 2, port: 2, subnet: ip('10.0.2.0'), prefixLen: 24 });
  w.addRoute(ip('10.1.0.0'), 16, a);
  assert.throws(
    () => w.addRoute(ip('10.2.0.0'), 16, a),
    (e: unknown) => isWeftError(e, 'EROUTEFULL') && /3 routes/.test(e.message) && /maxRoutes/.test(e.message),
  );
  // A peer moving its subnet at full capacity frees its old route first.
  w.upsertPeer('b', { addr: 2, port: 2, subnet: ip('10.0.9.0'), prefixLen: 24 });
  assert.equal(w.routeCount(), 3);
  w.upsertPeer('a', { addr: 1, port: 1, subnet: ip('10.0.0.0'), prefixLen: 23 });
  assert.equal(w.routeCount(), 3);
  assert.throws(() => w.addRoute(1, 32, a), (e: unknown) => isWeftError(e, 'EROUTEFULL'));
  // A new peer whose subnet route does not fit is refused whole.
  w.removePeer('b');
  w.addRoute(ip('10.3.0.0'), 16, a);
  assert.throws(
    () => w.upsertPeer('c', { addr: 3, port: 1, subnet: ip('10.0.3.0'), prefixLen: 24 }),
    (e: unknown) => isWeftError(e, 'EROUTEFULL') && /maxRoutes/.test(e.message),
  );
  assert.equal(w.peerCount(), 1);
  w.deleteRoute(ip('10.3.0.0'), 16);
  w.addRoute(ip('10.1.0.0'), 16, a); // replacing, not adding
  assert.equal(w.routeCount(), 2);
  assert.equal(w.deleteRoute(ip('10.1.0.0'), 16), true);
  w.addRoute(ip('10.2.0.0'), 16, a);
  assert.equal(w.routeCount(), 2);
  assert.throws(() => RouteTableWriter.create({ maxRoutes: 0 }), RangeError);
  assert.equal(await w.commit(), 1);
});

test('bad arguments are refused', () => {
  const w = RouteTableWriter.create({ maxRoutes: 4, maxPeers: 2 });
  assert.throws(() => w.upsertPeer('x', { addr: -1, port: 1, subnet: 0, prefixLen: 8 }), RangeError);
  assert.throws(() => w.upsertPeer('x', { addr: 1, port: 70000, subnet: 0, prefixLen: 8 }), RangeError);
  assert.throws(() => w.upsertPeer('x', { addr: 1, port: 1, subnet: 0, prefixLen: 33 }), RangeError);
  assert.throws(() => w.upsertPeer('x', { addr: 1, port: 1, subnet: 0, prefixLen: 8, mac: new Uint8Array(5) }), RangeError);
  assert.throws(() => w.setLocalSubnet(2 ** 32, 8), RangeError);
  assert.throws(() => new RouteTableReader(w.buffer, 64), RangeError);
  assert.throws(() => new RouteTableReader(new SharedArrayBuffer(1024), 0), (e: unknown) => isWeftError(e, 'EROUTEBUF'));
  assert.equal(w.peerCount(), 0);
});

test('flannel-shaped table: /24 per peer inside a /16, branch at exactly /16', async () => {
  const w = RouteTableWriter.create({ maxRoutes: 16, maxPeers: 8 });
  const r = new RouteTableReader(w.buffer, 0);
  const a = w.upsertPeer('a', { addr: ip('192.168.1.2'), port: 8285, subnet: ip('10.244.1.0'), prefixLen: 24 });
  const b = w.upsertPeer('b', { addr: ip('192.168.1.3'), port: 8285, subnet: ip('10.244.200.0'), prefixLen: 24 });
  await publish(w, r);
  // 10.244.1.0 and 10.244.200.0 diverge at bit 16: a branch node of length 16.
  assert.equal(r.lookup(ip('10.244.1.9')), a);
  assert.equal(r.lookup(ip('10.244.200.9')), b);
  assert.equal(r.lookup(ip('10.244.2.9')), -1);
  w.addRoute(ip('10.244.0.0'), 16, a); // the branch node becomes a route
  await publish(w, r);
  assert.equal(r.lookup(ip('10.244.2.9')), a);
  assert.equal(r.lookup(ip('10.244.200.9')), b);
  assert.equal(r.lookup(ip('10.245.0.0')), -1);
  r.release();
});
