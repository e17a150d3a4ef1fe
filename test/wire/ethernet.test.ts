import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EthernetHeader, copyMac, emitEthernet, formatMac, macEquals, macIsZero, parseEthernet, parseMac,
  randomLocallyAdministeredMac, type EthernetRepr,
} from '../../src/wire/ethernet.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { ETHERTYPE_IPV4 } from '../../src/wire/constants.js';
import { isWeftError } from '../../src/errors.js';
import { hex } from '../helpers/hex.js';

// The inner Ethernet header of a kernel vxlan frame (flannel.1 on A →
// B, see test/wire/vxlan.test.ts) followed by the first inner IPv4 bytes.
const FRAME = hex('9a3b 1102 7e5c c6d2 326f 8f44 0800 4500 002c');
const MAC_A = hex('c6d2 326f 8f44');
const MAC_B = hex('9a3b 1102 7e5c');
const REPR: EthernetRepr = { dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4 };

test('deconstruct: kernel inner frame', () => {
  const h = new EthernetHeader(FRAME, 0);
  assert.equal(h.check(FRAME.length), DropReason.NONE);
  assert.ok(h.dstIs(MAC_B));
  assert.ok(h.srcIs(MAC_A));
  assert.ok(!h.dstIs(MAC_A));
  assert.equal(h.dstIsGroup, false);
  assert.equal(h.ethertype, 0x0800);
});

test('parse / emit round trip; emit writes exactly 14 bytes', () => {
  assert.deepEqual(parseEthernet(FRAME, 0, FRAME.length), REPR);
  const b = new Uint8Array(20).fill(0xa5);
  assert.equal(emitEthernet(REPR, b, 3), 14);
  assert.deepEqual(b.subarray(3, 17), FRAME.subarray(0, 14));
  assert.equal(b[2], 0xa5);
  assert.equal(b[17], 0xa5);
});

test('construct with the view at a non-zero byteOffset', () => {
  const ab = new ArrayBuffer(40);
  const b = new Uint8Array(ab, 7, 30).fill(0xa5);
  const h = new EthernetHeader().reset(b, 2);
  h.setDst(MAC_B);
  h.setSrc(hex('00 c6d2 326f 8f44'), 1);
  h.ethertype = 0x86dd;
  assert.deepEqual(b.subarray(2, 16), hex('9a3b 1102 7e5c c6d2 326f 8f44 86dd'));
  assert.equal(b[16], 0xa5);
  assert.equal(new Uint8Array(ab)[7 + 2], 0x9a);
  assert.ok(h.srcIs(MAC_A));
});

test('impossible lengths', () => {
  assert.equal(new EthernetHeader(FRAME, 0).check(13), DropReason.TRUNCATED);
  assert.equal(new EthernetHeader(FRAME, 4).check(FRAME.length), DropReason.TRUNCATED, 'past the buffer');
  assert.throws(() => parseEthernet(FRAME, 0, 10), (e) => isWeftError(e, 'EPACKET'));
  assert.throws(() => emitEthernet(REPR, new Uint8Array(13), 0), (e) => isWeftError(e, 'EPACKET'));
  assert.throws(() => emitEthernet({ ...REPR, dst: new Uint8Array(5) }, new Uint8Array(14), 0), (e) => isWeftError(e, 'EPACKET'));
});

test('group destination (broadcast, multicast) is recognised', () => {
  assert.equal(new EthernetHeader(hex('ffff ffff ffff c6d2 326f 8f44 0806'), 0).dstIsGroup, true);
  assert.equal(new EthernetHeader(hex('0100 5e00 0001 c6d2 326f 8f44 0800'), 0).dstIsGroup, true);
});

test('MAC helpers compare and copy at offsets', () => {
  const big = new Uint8Array(32);
  copyMac(big, 9, FRAME, 6);
  assert.ok(macEquals(big, 9, MAC_A, 0));
  assert.ok(!macEquals(big, 9, MAC_B, 0));
  big[14] ^= 1;
  assert.ok(!macEquals(big, 9, MAC_A, 0), 'last byte counts');
  assert.ok(macIsZero(big, 0));
  assert.ok(!macIsZero(big, 9));
});

test('parseMac / formatMac', () => {
  assert.deepEqual(parseMac('c6:d2:32:6f:8f:44'), MAC_A);
  assert.deepEqual(parseMac('C6:D2:32:6F:8F:44'), MAC_A);
  assert.equal(formatMac(MAC_A), 'c6:d2:32:6f:8f:44');
  assert.equal(formatMac(FRAME, 0), '9a:3b:11:02:7e:5c');
  for (const bad of ['', 'c6:d2:32:6f:8f', 'c6:d2:32:6f:8f:44:00', 'c6-d2-32-6f-8f-44', 'g6:d2:32:6f:8f:44', 'c6:d2:32:6f:8f:4']) {
    assert.throws(() => parseMac(bad), (e) => isWeftError(e, 'EINVAL'), bad);
  }
});

test('randomLocallyAdministeredMac: local bit set, group bit clear, random', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const m = randomLocallyAdministeredMac();
    assert.equal(m.length, 6);
    assert.equal(m[0]! & 0x02, 0x02, 'locally administered');
    assert.equal(m[0]! & 0x01, 0, 'unicast');
    seen.add(formatMac(m));
  }
  assert.ok(seen.size > 195);
});
