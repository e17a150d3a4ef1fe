import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  foldChecksum,
  ipv4HeaderChecksum,
  onesSum,
  pseudoHeaderSum,
  updateChecksum16,
} from '../../src/wire/checksum.js';
import { IPPROTO_UDP } from '../../src/wire/constants.js';
import { hex } from '../helpers/hex.js';

/** Seeded PRNG (mulberry32): the same 10 000 cases on every run. */
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

/** Obviously right RFC 1071 checksum: sum all words, fold once at the end. */
function slowChecksum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  }
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

// Captured (tcpdump on a veth): ICMP echo request 10.244.1.2 → 10.244.2.2.
const PING_HDR = hex('4500 0034 07f6 4000 4001 19e8 0af4 0102 0af4 0202');

test('RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2', () => {
  const b = hex('0001f203f4f5f6f7');
  const s = onesSum(b, 0, 8);
  assert.equal(foldChecksum(s), ~0xddf2 & 0xffff);
  assert.equal(foldChecksum(s), 0x220d);
  // byte order independence is the RFC's point; here we store big-endian
  assert.equal(foldChecksum(onesSum(b, 0, 4, onesSum(b, 4, 4))), 0x220d);
});

test('odd lengths pad the last byte with a zero low byte', () => {
  assert.equal(onesSum(hex('ab'), 0, 1), 0xab00);
  assert.equal(onesSum(hex('0102ab'), 0, 3), 0x0102 + 0xab00);
  assert.equal(onesSum(hex('ffff'), 0, 0), 0);
  const rnd = mulberry32(7);
  const buf = new Uint8Array(4000);
  for (let i = 0; i < buf.length; i++) buf[i] = (rnd() * 256) | 0;
  for (let n = 0; n < 300; n++) {
    const off = (rnd() * 50) | 0;
    const len = (rnd() * 3000) | 0;
    assert.equal(foldChecksum(onesSum(buf, off, len)), slowChecksum(buf, off, len), `off ${off} len ${len}`);
  }
});

test('long inputs do not overflow: 65535 bytes of 0xff and random', () => {
  const ff = new Uint8Array(65535).fill(0xff);
  assert.equal(foldChecksum(onesSum(ff, 0, 65535)), slowChecksum(ff, 0, 65535));
  assert.ok(onesSum(ff, 0, 65535) < 0x20000);
  const rnd = mulberry32(99);
  const r = new Uint8Array(65535 + 3);
  for (let i = 0; i < r.length; i++) r[i] = (rnd() * 256) | 0;
  assert.equal(foldChecksum(onesSum(r, 3, 65535)), slowChecksum(r, 3, 65535));
  // a large incoming running sum is folded, not lost
  assert.equal(foldChecksum(onesSum(ff, 0, 2, 2 ** 40)), foldChecksum(2 ** 40 + 0xffff));
  assert.ok(onesSum(ff, 0, 2, 2 ** 52 - 1) < 0x20000);
  assert.equal(foldChecksum(onesSum(ff, 0, 65535, 2 ** 52 - 1)), foldChecksum(onesSum(ff, 0, 65535) + 2 ** 52 - 1));
});

test('summing in pieces (even-length pieces) equals summing at once', () => {
  const b = hex('4500003407f640004001 19e80af401020af40202');
  const whole = foldChecksum(onesSum(b, 0, 20));
  assert.equal(foldChecksum(onesSum(b, 6, 14, onesSum(b, 0, 6))), whole);
});

test('foldChecksum folds carries and complements', () => {
  assert.equal(foldChecksum(0), 0xffff);
  assert.equal(foldChecksum(0xffff), 0);
  assert.equal(foldChecksum(0x1fffe), 0); // 0xfffe + 1 = 0xffff
  assert.equal(foldChecksum(0x12345), ~0x2346 & 0xffff);
  assert.equal(foldChecksum(2 ** 40), ~0x0100 & 0xffff); // 2^40 = 2^(16+16+8) ≡ 2^8 (mod 0xffff)
});

test('ipv4HeaderChecksum ignores the stored checksum field', () => {
  assert.equal(ipv4HeaderChecksum(PING_HDR, 0, 20), 0x19e8);
  const b = PING_HDR.slice();
  b[10] = 0x12;
  b[11] = 0x34;
  assert.equal(ipv4HeaderChecksum(b, 0, 20), 0x19e8);
  // at a non-zero offset in a larger ArrayBuffer
  const ab = new ArrayBuffer(64);
  const v = new Uint8Array(ab, 5, 40);
  v.set(PING_HDR, 9);
  assert.equal(ipv4HeaderChecksum(v, 9, 20), 0x19e8);
});

test('pseudoHeaderSum: captured flannel datagram 192.168.64.3 → .4:8285 checksums to 0xbd63', () => {
  // UDP header + payload (the inner ping); checksum field zero.
  const udp = hex(
    '205d 205d 003c 0000' +
      '4500 0034 07f6 4000 4001 19e8 0af4 0102 0af4 0202 0800 95a1 125a 0001 3284 026b' +
      '0000 0000 5a60 0500 0000 0000 7765 6674 7765 6674',
  );
  const s = pseudoHeaderSum(0xc0a84003, 0xc0a84004, IPPROTO_UDP, 60);
  assert.equal(foldChecksum(onesSum(udp, 0, udp.length, s)), 0xbd63);
});

test('RFC 1624 section 4 example: 0xdd2f, 0x5555 → 0x3285 gives 0x0000 (not 0xffff)', () => {
  assert.equal(updateChecksum16(0xdd2f, 0x5555, 0x3285), 0x0000);
});

/** Replaces word `w` of a header and returns [oldWord]. */
function setWord(b: Uint8Array, w: number, v: number): number {
  const old = (b[2 * w]! << 8) | b[2 * w + 1]!;
  b[2 * w] = v >> 8;
  b[2 * w + 1] = v & 0xff;
  return old;
}

/** Sum of the header's words other than `word` and the checksum (word 5). */
function sumExcept(b: Uint8Array, word: number): number {
  let s = 0;
  for (let w = 0; w < 10; w++) if (w !== word && w !== 5) s += (b[2 * w]! << 8) | b[2 * w + 1]!;
  return s;
}

test('incremental update equals full recompute on 10 000 seeded random headers', () => {
  const rnd = mulberry32(0x5eed);
  const h = new Uint8Array(20);
  let zeroBefore = 0;
  let zeroAfter = 0;
  for (let n = 0; n < 10_000; n++) {
    for (let i = 0; i < 20; i++) h[i] = (rnd() * 256) | 0;
    h[0] = 0x45;
    const w = 1 + ((rnd() * 8) | 0); // any word but 0 (version) …
    const word = w >= 5 ? w + 1 : w; // … and 5 (the checksum itself)
    const mode = n % 8;
    if (mode === 1) {
      // Header whose checksum is 0x0000: sum of all other words is 0xffff.
      setWord(h, word, foldChecksum(sumExcept(h, word)));
    }
    h[10] = 0;
    h[11] = 0;
    const c0 = ipv4HeaderChecksum(h, 0, 20);
    setWord(h, 5, c0);
    if (c0 === 0) zeroBefore++;
    let nw = (rnd() * 65536) | 0;
    if (mode === 2) nw = 0x0000;
    if (mode === 3) nw = 0xffff;
    if (mode === 4) {
      // New value that makes the new checksum 0x0000 (where RFC 1141 gives 0xffff).
      nw = foldChecksum(sumExcept(h, word));
    }
    if (mode === 5) setWord(h, word, rnd() < 0.5 ? 0 : 0xffff);
    const c1 = mode === 5 ? ipv4HeaderChecksum(h, 0, 20) : c0;
    setWord(h, 5, c1);
    const old = setWord(h, word, nw);
    const inc = updateChecksum16(c1, old, nw);
    const full = ipv4HeaderChecksum(h, 0, 20);
    if (full === 0) zeroAfter++;
    assert.equal(inc, full, `case ${n}: word ${word} ${old.toString(16)} → ${nw.toString(16)}, csum ${c1.toString(16)}`);
  }
  // the edge cases were really exercised
  assert.ok(zeroBefore > 1000, `zeroBefore ${zeroBefore}`);
  assert.ok(zeroAfter > 1000, `zeroAfter ${zeroAfter}`);
});
