import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipv4Header, emitIpv4, parseIpv4, type Ipv4Repr } from '../../src/wire/ipv4.js';
import { ipv4HeaderChecksum } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { IPPROTO_ICMP } from '../../src/wire/constants.js';
import { parseIpv4 as addr } from '../../src/wire/ipv4-addr.js';
import { isWeftError } from '../../src/errors.js';
import { hex } from '../helpers/hex.js';

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

// Captured with tcpdump on a veth: `ping -c1 -s24 -p 77656674 10.244.2.2`
// from 10.244.1.2 (kernel-built; header and ICMP checksums verified).
const PING = hex(
  '4500 0034 07f6 4000 4001 19e8 0af4 0102 0af4 0202' + // IPv4
    '0800 95a1 125a 0001' + // ICMP echo request id 0x125a seq 1
    '3284 026b 0000 0000 5a60 0500 0000 0000 7765 6674 7765 6674', // timestamp + pattern
);

const PING_REPR: Ipv4Repr = {
  src: addr('10.244.1.2'),
  dst: addr('10.244.2.2'),
  protocol: IPPROTO_ICMP,
  ttl: 64,
  tos: 0,
  ident: 0x07f6,
  dontFrag: true,
  payloadLen: 32,
};

function throwsEpacket(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => isWeftError(e, 'EPACKET') && re.test((e as Error).message));
}

test('deconstruct: captured ICMP echo request', () => {
  const h = new Ipv4Header().reset(PING, 0);
  assert.equal(h.check(PING.length), DropReason.NONE);
  assert.equal(h.version, 4);
  assert.equal(h.headerLen, 20);
  assert.equal(h.tos, 0);
  assert.equal(h.totalLength, 52);
  assert.equal(h.ident, 0x07f6);
  assert.equal(h.dontFrag, true);
  assert.equal(h.moreFrags, false);
  assert.equal(h.fragOffset, 0);
  assert.equal(h.isFirstFragment(), true);
  assert.equal(h.ttl, 64);
  assert.equal(h.protocol, IPPROTO_ICMP);
  assert.equal(h.checksum, 0x19e8);
  assert.equal(h.src, addr('10.244.1.2'));
  assert.equal(h.dst, addr('10.244.2.2'));
  assert.equal(h.verifyChecksum(), true);
});

test('construct: setters on a 0xa5-filled buffer give the captured header', () => {
  const b = new Uint8Array(24).fill(0xa5);
  const h = new Ipv4Header(b, 0);
  h.version = 4;
  h.headerLen = 20;
  h.tos = 0;
  h.totalLength = 52;
  h.ident = 0x07f6;
  h.clearFlags(); // the reserved bit is not otherwise writable
  h.dontFrag = true;
  h.moreFrags = false;
  h.fragOffset = 0;
  h.ttl = 64;
  h.protocol = IPPROTO_ICMP;
  h.src = addr('10.244.1.2');
  h.dst = addr('10.244.2.2');
  h.fillChecksum();
  assert.deepEqual(b.subarray(0, 20), PING.subarray(0, 20));
  assert.deepEqual(b.subarray(20), new Uint8Array(4).fill(0xa5));
});

test('flag and fragment-offset setters do not clobber each other', () => {
  const b = PING.slice();
  const h = new Ipv4Header(b, 0);
  h.fragOffset = 0x1abc;
  assert.equal(h.dontFrag, true);
  assert.equal(h.moreFrags, false);
  h.moreFrags = true;
  h.dontFrag = false;
  assert.equal(h.fragOffset, 0x1abc);
  assert.equal(b[6], 0x20 | 0x1a);
  assert.equal(b[7], 0xbc);
  assert.equal(h.isFirstFragment(), false);
  h.version = 6;
  assert.equal(h.headerLen, 20);
  h.headerLen = 24;
  assert.equal(h.version, 6);
  assert.equal(b[0], 0x66);
  h.src = 0xffffffff;
  assert.equal(h.src, 0xffffffff); // unsigned, not -1
});

test('parse: captured header gives the expected Repr', () => {
  assert.deepEqual(parseIpv4(PING, 0, PING.length), PING_REPR);
});

test('emit: writes exactly 20 bytes, equal to the capture', () => {
  const b = new Uint8Array(30).fill(0xa5);
  assert.equal(emitIpv4(PING_REPR, b, 2), 20);
  assert.deepEqual(b.subarray(2, 22), PING.subarray(0, 20));
  assert.deepEqual(b.subarray(0, 2), new Uint8Array(2).fill(0xa5));
  assert.deepEqual(b.subarray(22), new Uint8Array(8).fill(0xa5));
});

test('parse ∘ emit round trip on seeded random Reprs', () => {
  const rnd = mulberry32(42);
  const b = new Uint8Array(2000);
  for (let n = 0; n < 200; n++) {
    const r: Ipv4Repr = {
      src: (rnd() * 2 ** 32) >>> 0,
      dst: (rnd() * 2 ** 32) >>> 0,
      protocol: (rnd() * 256) | 0,
      ttl: (rnd() * 256) | 0,
      tos: (rnd() * 256) | 0,
      ident: (rnd() * 65536) | 0,
      dontFrag: rnd() < 0.5,
      payloadLen: (rnd() * 1900) | 0,
    };
    emitIpv4(r, b, 0);
    assert.deepEqual(parseIpv4(b, 0, 20 + r.payloadLen), r);
  }
});

test('emit rejects a payload that cannot fit and a buffer without room', () => {
  const b = new Uint8Array(40);
  throwsEpacket(() => emitIpv4({ ...PING_REPR, payloadLen: 65516 }, b, 0), /65515/);
  throwsEpacket(() => emitIpv4(PING_REPR, b, 21), /no room/);
});

test('check: every reason it can return', () => {
  const h = new Ipv4Header();
  const b = PING.slice();
  h.reset(b, 0);
  assert.equal(h.check(19), DropReason.TRUNCATED);
  assert.equal(h.check(0), DropReason.TRUNCATED);
  assert.equal(h.check(53), DropReason.TRUNCATED); // longer than the buffer
  assert.equal(h.reset(b, 40).check(20), DropReason.TRUNCATED);
  h.reset(b, 0);
  b[0] = 0x65;
  assert.equal(h.check(52), DropReason.BAD_VERSION);
  b[0] = 0x44; // IHL 4 → 16 bytes
  assert.equal(h.check(52), DropReason.BAD_HEADER_LENGTH);
  b[0] = 0x4f; // IHL 15 → 60 bytes > 52
  assert.equal(h.check(52), DropReason.BAD_HEADER_LENGTH);
  b[0] = 0x45;
  assert.equal(h.check(51), DropReason.BAD_TOTAL_LENGTH); // datagram cut short
  const longer = new Uint8Array(53);
  longer.set(PING);
  assert.equal(h.reset(longer, 0).check(53), DropReason.BAD_TOTAL_LENGTH); // trailing byte
  h.reset(b, 0);
  h.totalLength = 19;
  assert.equal(h.check(52), DropReason.BAD_TOTAL_LENGTH);
  h.totalLength = 52;
  assert.equal(h.check(52), DropReason.NONE);
});

test('parse throws EPACKET naming each problem', () => {
  const b = PING.slice();
  throwsEpacket(() => parseIpv4(b, 0, 10), /shorter than an IPv4 header/);
  b[0] = 0x65;
  throwsEpacket(() => parseIpv4(b, 0, 52), /version is 6/);
  b[0] = 0x43;
  throwsEpacket(() => parseIpv4(b, 0, 52), /header length 12/);
  b[0] = 0x45;
  throwsEpacket(() => parseIpv4(b, 0, 50), /total length 52 does not match the 50 bytes/);
  b[11] ^= 1;
  throwsEpacket(() => parseIpv4(b, 0, 52), /checksum is 0x19e9, expected 0x19e8/);
  b[11] ^= 1;
  const h = new Ipv4Header(b, 0);
  h.moreFrags = true;
  h.fillChecksum();
  throwsEpacket(() => parseIpv4(b, 0, 52), /fragment/);
  h.moreFrags = false;
  h.fragOffset = 185;
  h.fillChecksum();
  throwsEpacket(() => parseIpv4(b, 0, 52), /offset 1480/);
});

test('options: header length 24 is checked, summed and skipped', () => {
  // The ping header with a 4-byte option (NOP NOP NOP EOL) inserted.
  const b = new Uint8Array(56);
  b.set(PING.subarray(0, 20), 0);
  b.set([1, 1, 1, 0], 20);
  b.set(PING.subarray(20), 24);
  const h = new Ipv4Header(b, 0);
  h.headerLen = 24;
  h.totalLength = 56;
  h.fillChecksum();
  assert.equal(h.check(56), DropReason.NONE);
  assert.equal(h.checksum, ipv4HeaderChecksum(b, 0, 24));
  assert.notEqual(h.checksum, ipv4HeaderChecksum(b, 0, 20));
  assert.equal(h.verifyChecksum(), true);
  assert.equal(parseIpv4(b, 0, 56).payloadLen, 32);
  assert.equal(h.check(23), DropReason.BAD_HEADER_LENGTH); // options cut off
  assert.equal(h.check(19), DropReason.TRUNCATED);
});

test('view at a non-zero byteOffset in a larger ArrayBuffer', () => {
  const ab = new ArrayBuffer(128);
  const slab = new Uint8Array(ab, 11, 100);
  slab.set(PING, 7);
  const h = new Ipv4Header().reset(slab, 7);
  assert.equal(h.check(52), DropReason.NONE);
  assert.equal(h.src, addr('10.244.1.2'));
  assert.equal(h.verifyChecksum(), true);
  assert.deepEqual(parseIpv4(slab, 7, 52), PING_REPR);
  h.ttl = 3;
  assert.equal(new Uint8Array(ab)[11 + 7 + 8], 3);
  h.fillChecksum();
  assert.equal(h.decrementTtl(), 2);
  assert.equal(h.verifyChecksum(), true);
  assert.equal(emitIpv4(PING_REPR, slab, 60), 20);
  assert.deepEqual(slab.subarray(60, 80), PING.subarray(0, 20));
  assert.equal(new Uint8Array(ab)[11 + 60], 0x45);
});

test('decrementTtl: captured packet 64 → 63 with checksum 0x1ae8', () => {
  const b = PING.slice();
  const h = new Ipv4Header(b, 0);
  assert.equal(h.decrementTtl(), 63);
  assert.equal(h.ttl, 63);
  assert.equal(h.checksum, 0x1ae8);
  assert.equal(h.verifyChecksum(), true);
  assert.deepEqual(b.subarray(20), PING.subarray(20)); // payload untouched
});

test('decrementTtl: 1 → 0 is reported; an arriving 0 is not wrapped to 255', () => {
  const b = PING.slice();
  const h = new Ipv4Header(b, 0);
  h.ttl = 1;
  h.fillChecksum();
  assert.equal(h.decrementTtl(), 0);
  assert.equal(h.verifyChecksum(), true);
  const before = b.slice();
  assert.equal(h.decrementTtl(), 0);
  assert.deepEqual(b, before);
});

test('decrementTtl keeps the checksum valid on seeded random headers, down to 0', () => {
  const rnd = mulberry32(1624);
  const b = new Uint8Array(20);
  const h = new Ipv4Header(b, 0);
  for (let n = 0; n < 2000; n++) {
    for (let i = 0; i < 20; i++) b[i] = (rnd() * 256) | 0;
    b[0] = 0x45;
    h.fillChecksum();
    let ttl = h.ttl;
    while (ttl > 0) {
      const next = h.decrementTtl();
      assert.equal(next, ttl - 1);
      ttl = next;
      assert.equal(h.checksum, ipv4HeaderChecksum(b, 0, 20), `case ${n} ttl ${ttl}`);
    }
  }
});
