import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PICK_WINDOW,
  isSubnetCompatible,
  markTaken,
  pickSubnet,
  prefixesOverlap,
  subnetCount,
  subnetsInRange,
} from '../../src/subnet/allocate.js';
import { parseIpv4 as ip, parseIpv4Prefix as pfx } from '../../src/wire/ipv4-addr.js';

/** Seeded PRNG (mulberry32): the same picks on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NET = pfx('10.244.0.0/16');
const base = { network: NET, subnetLen: 24, subnetMin: ip('10.244.1.0'), subnetMax: ip('10.244.255.0') };

test('pickSubnet: random 0 picks the first free, random→1 the 100th free', () => {
  assert.equal(pickSubnet({ ...base, taken: new Set(), random: () => 0 }), ip('10.244.1.0'));
  assert.equal(pickSubnet({ ...base, taken: new Set(), random: () => 0.999999 }), ip('10.244.100.0'));
  // A random() of exactly 1 (a bad generator) still stays in the window.
  assert.equal(pickSubnet({ ...base, taken: new Set(), random: () => 1 }), ip('10.244.100.0'));
});

test('pickSubnet: the window is the first 100 free, skipping taken ones', () => {
  const taken = new Set<number>([ip('10.244.1.0'), ip('10.244.2.0'), ip('10.244.50.0')]);
  assert.equal(pickSubnet({ ...base, taken, random: () => 0 }), ip('10.244.3.0'));
  // 100 free from .3 with .50 skipped ends at .103.
  assert.equal(pickSubnet({ ...base, taken, random: () => 0.999999 }), ip('10.244.103.0'));
  const rnd = mulberry32(7);
  for (let i = 0; i < 2000; i++) {
    const a = pickSubnet({ ...base, taken, random: rnd });
    assert.ok(a !== null && !taken.has(a) && a >= ip('10.244.3.0') && a <= ip('10.244.103.0'));
    assert.equal(a & 0xff, 0);
  }
});

test('pickSubnet: respects SubnetMin and SubnetMax', () => {
  const o = { ...base, subnetMin: ip('10.244.10.0'), subnetMax: ip('10.244.12.0'), taken: new Set<number>() };
  const got = new Set<number>();
  const rnd = mulberry32(1);
  for (let i = 0; i < 200; i++) got.add(pickSubnet({ ...o, random: rnd }) as number);
  assert.deepEqual([...got].sort((a, b) => a - b), [ip('10.244.10.0'), ip('10.244.11.0'), ip('10.244.12.0')]);
});

test('pickSubnet: out of subnets → null', () => {
  const o = { network: pfx('10.10.0.0/28'), subnetLen: 30, subnetMin: ip('10.10.0.4'), subnetMax: ip('10.10.0.8') };
  assert.equal(pickSubnet({ ...o, taken: new Set([ip('10.10.0.4'), ip('10.10.0.8')]), random: Math.random }), null);
  assert.equal(pickSubnet({ ...o, taken: new Set([ip('10.10.0.4')]), random: Math.random }), ip('10.10.0.8'));
  // Min above Max: nothing to pick.
  assert.equal(pickSubnet({ ...o, subnetMin: ip('10.10.0.8'), subnetMax: ip('10.10.0.4'), taken: new Set(), random: Math.random }), null);
});

test('pickSubnet: never leaves Network even with a wild SubnetMax', () => {
  const o = { network: pfx('10.10.0.0/28'), subnetLen: 30, subnetMin: ip('10.10.0.4'), subnetMax: ip('10.10.0.255') };
  const rnd = mulberry32(3);
  for (let i = 0; i < 200; i++) {
    const a = pickSubnet({ ...o, taken: new Set(), random: rnd }) as number;
    assert.ok(a >= ip('10.10.0.4') && a <= ip('10.10.0.12'));
  }
});

test('pickSubnet: a seeded random spreads over many subnets of the window', () => {
  const rnd = mulberry32(42);
  const seen = new Map<number, number>();
  for (let i = 0; i < 1000; i++) {
    const a = pickSubnet({ ...base, taken: new Set(), random: rnd }) as number;
    seen.set(a, (seen.get(a) ?? 0) + 1);
  }
  assert.ok(seen.size > 50, `only ${seen.size} distinct subnets`);
  assert.ok(Math.max(...seen.values()) < 40);
  for (const a of seen.keys()) assert.ok(a >= ip('10.244.1.0') && a < ip('10.244.1.0') + PICK_WINDOW * 256);
});

test('subnetsInRange / subnetCount', () => {
  assert.deepEqual(subnetsInRange(ip('10.10.0.4'), ip('10.10.0.12'), 30), [ip('10.10.0.4'), ip('10.10.0.8'), ip('10.10.0.12')]);
  assert.equal(subnetCount(ip('10.10.0.4'), ip('10.10.0.12'), 30), 3);
  assert.equal(subnetCount(ip('10.244.1.0'), ip('10.244.255.0'), 24), 255);
  assert.equal(subnetCount(ip('10.10.0.8'), ip('10.10.0.4'), 30), 0);
  assert.equal(subnetsInRange(ip('10.0.0.0'), ip('10.255.255.252'), 30, 5).length, 5);
  // The top of the address space does not wrap around.
  assert.deepEqual(subnetsInRange(ip('255.255.255.0'), ip('255.255.255.0'), 24), [ip('255.255.255.0')]);
});

test('markTaken: leases of other lengths block every subnet they overlap', () => {
  const t = new Set<number>();
  markTaken(t, pfx('10.244.4.0/22'), 24, ip('10.244.1.0'), ip('10.244.255.0'));
  assert.deepEqual([...t], [ip('10.244.4.0'), ip('10.244.5.0'), ip('10.244.6.0'), ip('10.244.7.0')]);
  t.clear();
  markTaken(t, pfx('10.244.9.128/25'), 24, ip('10.244.1.0'), ip('10.244.255.0'));
  assert.deepEqual([...t], [ip('10.244.9.0')]);
  t.clear();
  // Clipped to [min, max].
  markTaken(t, pfx('10.244.0.0/16'), 24, ip('10.244.1.0'), ip('10.244.3.0'));
  assert.deepEqual([...t], [ip('10.244.1.0'), ip('10.244.2.0'), ip('10.244.3.0')]);
  t.clear();
  markTaken(t, pfx('10.245.0.0/24'), 24, ip('10.244.1.0'), ip('10.244.255.0'));
  assert.equal(t.size, 0);
});

test('prefixesOverlap / isSubnetCompatible', () => {
  assert.ok(prefixesOverlap(pfx('10.0.0.0/8'), pfx('10.1.0.0/16')));
  assert.ok(!prefixesOverlap(pfx('10.0.0.0/24'), pfx('10.0.1.0/24')));
  const conf = { subnetLen: 24, subnetMin: ip('10.244.1.0'), subnetMax: ip('10.244.255.0') };
  assert.ok(isSubnetCompatible(conf, pfx('10.244.7.0/24')));
  assert.ok(!isSubnetCompatible(conf, pfx('10.244.0.0/24')));
  assert.ok(!isSubnetCompatible(conf, pfx('10.244.7.0/25')));
  assert.ok(!isSubnetCompatible(conf, pfx('10.245.7.0/24')));
});
