import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VxlanHeader, emitVxlan, parseVxlan, type VxlanRepr } from '../../src/wire/vxlan.js';
import { EthernetHeader } from '../../src/wire/ethernet.js';
import { Ipv4Header } from '../../src/wire/ipv4.js';
import { UdpHeader } from '../../src/wire/udp.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import { ETHERTYPE_IPV4, VXLAN_HEADER_LEN, VXLAN_OVERHEAD, VXLAN_PORT_LINUX } from '../../src/wire/constants.js';
import { isWeftError } from '../../src/errors.js';
import { hex } from '../helpers/hex.js';

// Captured with tcpdump -x on the veth under two kernel vxlan devices set up
// as flannel does (flannel.1: id 1, dstport 8472, nolearning, static neigh
// and fdb; A = 192.168.100.1 / c6:d2:32:6f:8f:44 / 10.244.1.0/32,
// B = 192.168.100.2 / 9a:3b:11:02:7e:5c / 10.244.2.0/32), Linux 6.18:
// `ping -s 16 -I 10.244.1.0 10.244.2.0` from A. veth offloads the UDP
// checksum, so the capture holds the partial sum 0x49b0 (irrelevant here).
const KERNEL_FRAME = hex(
  '4500 005e 350c 0000 4011 fc2e c0a8 6401 c0a8 6402' + // outer IPv4
    'cd90 2118 004a 49b0' + // UDP 52624 → 8472, length 74
    '0800 0000 0000 0100' + // VXLAN: I, VNI 1
    '9a3b 1102 7e5c c6d2 326f 8f44 0800' + // Ethernet: B's MAC ← A's MAC, IPv4
    '4500 002c 1c30 4000 4001 05ba 0af4 0100 0af4 0200' + // inner IPv4 10.244.1.0 → 10.244.2.0
    '0800 ae40 721e 0001 1988 026b 0000 0000 b5ac 0600 0000 0000', // ICMP echo
);

// Same pair with `gbp` on both devices, `ping -m 4660` (SO_MARK 0x1234):
// the kernel puts the mark into the group policy id and sets G.
const KERNEL_GBP_VXLAN = hex('8800 1234 0000 0100');

const PLAIN: VxlanRepr = { vni: 1, gbp: null };

test('deconstruct: kernel-produced frame', () => {
  const udp = new UdpHeader(KERNEL_FRAME, 20);
  assert.equal(udp.check(74), DropReason.NONE);
  assert.equal(udp.dstPort, VXLAN_PORT_LINUX);
  const h = new VxlanHeader().reset(KERNEL_FRAME, 28);
  assert.equal(h.check(66), DropReason.NONE);
  assert.equal(h.flags, 0x08);
  assert.equal(h.vni, 1);
  assert.equal(h.hasGbp, false);
  const eth = new EthernetHeader(KERNEL_FRAME, 28 + VXLAN_HEADER_LEN);
  assert.equal(eth.ethertype, ETHERTYPE_IPV4);
  const ip = new Ipv4Header(KERNEL_FRAME, 50);
  assert.equal(ip.check(44), DropReason.NONE);
  assert.ok(ip.verifyChecksum());
  assert.equal(KERNEL_FRAME.length - 44, VXLAN_OVERHEAD, 'what the kernel adds = VXLAN_OVERHEAD');
});

test('deconstruct: kernel GBP header', () => {
  const h = new VxlanHeader(KERNEL_GBP_VXLAN, 0);
  assert.equal(h.check(8, true), DropReason.NONE);
  assert.equal(h.hasGbp, true);
  assert.equal(h.gbpPolicyId, 0x1234);
  assert.equal(h.gbpDontLearn, false);
  assert.equal(h.gbpPolicyApplied, false);
  assert.equal(h.vni, 1);
  assert.equal(h.check(8, false), DropReason.BAD_VXLAN_FLAGS, 'G is reserved without gbp');
});

test('parse and emit round trip (plain and GBP)', () => {
  assert.deepEqual(parseVxlan(KERNEL_FRAME, 28, 66), PLAIN);
  assert.deepEqual(parseVxlan(KERNEL_GBP_VXLAN, 0, 8, true), {
    vni: 1, gbp: { policyId: 0x1234, dontLearn: false, policyApplied: false },
  });
  const b = new Uint8Array(12).fill(0xa5);
  assert.equal(emitVxlan(PLAIN, b, 2), 8);
  assert.deepEqual(b.subarray(2, 10), KERNEL_FRAME.subarray(28, 36));
  assert.equal(b[1], 0xa5);
  assert.equal(b[10], 0xa5);
  b.fill(0xa5);
  emitVxlan({ vni: 1, gbp: { policyId: 0x1234, dontLearn: false, policyApplied: false } }, b, 0);
  assert.deepEqual(b.subarray(0, 8), KERNEL_GBP_VXLAN);
  b.fill(0xa5);
  emitVxlan({ vni: 0xabcdef, gbp: { policyId: 7, dontLearn: true, policyApplied: true } }, b, 0);
  assert.deepEqual(b.subarray(0, 8), hex('8848 0007 abcd ef00'));
  assert.deepEqual(parseVxlan(b, 0, 8, true), { vni: 0xabcdef, gbp: { policyId: 7, dontLearn: true, policyApplied: true } });
});

test('construct with the view at a non-zero byteOffset', () => {
  const ab = new ArrayBuffer(64);
  const b = new Uint8Array(ab, 5, 40).fill(0xa5);
  const h = new VxlanHeader().reset(b, 3);
  h.writePlain(0x123456);
  assert.deepEqual(b.subarray(3, 11), hex('0800 0000 1234 5600'));
  assert.equal(h.vni, 0x123456);
  h.vni = 42;
  assert.equal(h.vni, 42);
  h.flags = 0x88;
  assert.equal(h.hasGbp, true);
  assert.equal(b[2], 0xa5);
  assert.equal(b[11], 0xa5);
  assert.equal(new Uint8Array(ab)[5 + 3], 0x88);
});

test('check: impossible lengths and flags', () => {
  const h = new VxlanHeader(KERNEL_FRAME, 28);
  assert.equal(h.check(7), DropReason.TRUNCATED);
  assert.equal(h.check(0), DropReason.TRUNCATED);
  assert.equal(h.check(KERNEL_FRAME.length), DropReason.TRUNCATED, 'runs past the buffer');
  const cases: [string, string, boolean, DropReason][] = [
    ['I clear', '0000 0000 0000 0100', false, DropReason.BAD_VXLAN_FLAGS],
    ['I clear, gbp', '8000 1234 0000 0100', true, DropReason.BAD_VXLAN_FLAGS],
    ['reserved bit in byte 0', '0c00 0000 0000 0100', false, DropReason.BAD_VXLAN_FLAGS],
    ['reserved byte 1', '0801 0000 0000 0100', false, DropReason.BAD_VXLAN_FLAGS],
    ['reserved byte 3', '0800 0001 0000 0100', false, DropReason.BAD_VXLAN_FLAGS],
    ['last reserved byte', '0800 0000 0000 0101', false, DropReason.BAD_VXLAN_FLAGS],
    ['last reserved byte, gbp', '8800 0001 0000 0101', true, DropReason.BAD_VXLAN_FLAGS],
    ['policy id without G, gbp device', '0800 1234 0000 0100', true, DropReason.BAD_VXLAN_FLAGS],
    ['G with a reserved bit in byte 0', '8c00 1234 0000 0100', true, DropReason.BAD_VXLAN_FLAGS],
    ['D and A, gbp', '8848 1234 0000 0100', true, DropReason.NONE],
    ['D and A without gbp', '8848 1234 0000 0100', false, DropReason.BAD_VXLAN_FLAGS],
    ['plain on a gbp device', '0800 0000 0000 0100', true, DropReason.NONE],
  ];
  for (const [name, bytes, gbp, want] of cases) {
    assert.equal(new VxlanHeader(hex(bytes), 0).check(8, gbp), want, name);
  }
});

test('parse throws EPACKET naming the problem; emit rejects caller bugs', () => {
  assert.throws(() => parseVxlan(KERNEL_FRAME, 28, 4), (e) => isWeftError(e, 'EPACKET') && /shorter/.test(e.message));
  assert.throws(() => parseVxlan(hex('0000 0000 0000 0100'), 0, 8), (e) => isWeftError(e, 'EPACKET') && /I flag/.test(e.message));
  assert.throws(() => emitVxlan({ vni: 1 << 24, gbp: null }, new Uint8Array(8), 0), (e) => isWeftError(e, 'EPACKET'));
  assert.throws(() => emitVxlan(PLAIN, new Uint8Array(8), 1), (e) => isWeftError(e, 'EPACKET'));
  assert.throws(() => emitVxlan({ vni: 1, gbp: { policyId: 70000, dontLearn: false, policyApplied: false } }, new Uint8Array(8), 0),
    (e) => isWeftError(e, 'EPACKET'));
});
