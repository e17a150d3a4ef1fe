import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IcmpHeader, buildIcmpError, isIcmpError, shouldSendIcmpError } from '../../src/wire/icmp.js';
import { Ipv4Header, parseIpv4 } from '../../src/wire/ipv4.js';
import { DropReason } from '../../src/wire/drop-reason.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REQUEST,
  ICMP_ERROR_MAX_LEN,
  ICMP_EXC_TTL,
  ICMP_FRAG_NEEDED,
  ICMP_NET_UNREACH,
  ICMP_TIME_EXCEEDED,
  IPPROTO_ICMP,
} from '../../src/wire/constants.js';
import { parseIpv4 as addr } from '../../src/wire/ipv4-addr.js';
import { hex } from '../helpers/hex.js';

// Captured (tcpdump on a veth): echo request 10.244.1.2 → 10.244.2.2.
const PING = hex(
  '4500 0034 07f6 4000 4001 19e8 0af4 0102 0af4 0202' +
    '0800 95a1 125a 0001' +
    '3284 026b 0000 0000 5a60 0500 0000 0000 7765 6674 7765 6674',
);

// Captured: UDP 192.168.64.3:8285 → 192.168.64.4:8285, 4-byte payload
// 45 00 00 34 (checksum field as sent by veth with offload: 0x0176) …
const UDP_TO_CLOSED_PORT = hex('4500 0020 a66b 4000 4011 9309 c0a8 4003 c0a8 4004 205d 205d 000c 0176 4500 0034');
// … and the kernel's answer, port unreachable (ICMP checksum computed by
// the kernel in software, verified independently).
const KERNEL_PORT_UNREACH = hex(
  '45c0 003c a973 0000 4001 cf35 c0a8 4004 c0a8 4003' +
    '0303 758c 0000 0000' +
    '4500 0020 a66b 4000 4011 9309 c0a8 4003 c0a8 4004 205d 205d 000c 0176 4500 0034',
);

// Odd-length UDP datagram "abc" 192.168.64.3 → .4 (UDP checksum 0xf962).
const ODD_UDP = hex('4500 001f a64c 4000 4011 9329 c0a8 4003 c0a8 4004 205d 205d 000b f962 616263');
// buildIcmpError(time exceeded, from 192.168.64.1) about ODD_UDP, as computed
// independently in Python: TTL 64, ident 0, DF clear, TOS 0.
const TTL_EXCEEDED_ODD = hex(
  '4500 003b 0000 0000 4001 796d c0a8 4001 c0a8 4003' +
    '0b00 f674 0000 0000' +
    '4500 001f a64c 4000 4011 9329 c0a8 4003 c0a8 4004 205d 205d 000b f962 616263',
);

test('deconstruct: captured echo request', () => {
  const h = new IcmpHeader().reset(PING, 20);
  assert.equal(h.check(32), DropReason.NONE);
  assert.equal(h.type, ICMP_ECHO_REQUEST);
  assert.equal(h.code, 0);
  assert.equal(h.checksum, 0x95a1);
  assert.equal(h.echoIdent, 0x125a);
  assert.equal(h.echoSeq, 1);
  assert.equal(h.restOfHeader, 0x125a0001);
  assert.equal(h.verifyChecksum(32), true);
  assert.equal(h.verifyChecksum(31), false);
});

test('deconstruct: kernel port-unreachable quotes the original', () => {
  const h = new IcmpHeader(KERNEL_PORT_UNREACH, 20);
  assert.equal(h.check(40), DropReason.NONE);
  assert.equal(h.type, ICMP_DEST_UNREACH);
  assert.equal(h.code, 3);
  assert.equal(h.checksum, 0x758c);
  assert.equal(h.restOfHeader, 0);
  assert.equal(h.verifyChecksum(40), true);
  assert.deepEqual(KERNEL_PORT_UNREACH.subarray(28), UDP_TO_CLOSED_PORT);
  assert.equal(isIcmpError(h.type), true);
});

test('construct: echo request with setters on a 0xa5-filled buffer', () => {
  const b = new Uint8Array(52).fill(0xa5);
  b.set(PING.subarray(0, 20), 0);
  b.set(PING.subarray(28), 28);
  const h = new IcmpHeader(b, 20);
  h.type = ICMP_ECHO_REQUEST;
  h.code = 0;
  h.echoIdent = 0x125a;
  h.echoSeq = 1;
  h.fillChecksum(32);
  assert.deepEqual(b, PING);
  h.restOfHeader = 0xdeadbeef;
  assert.deepEqual(b.subarray(24, 28), hex('deadbeef'));
  h.mtu = 1422;
  assert.deepEqual(b.subarray(24, 28), hex('dead058e'));
  assert.equal(h.restOfHeader, 0xdead058e);
});

test('check: truncated message', () => {
  const h = new IcmpHeader(PING, 20);
  assert.equal(h.check(7), DropReason.TRUNCATED);
  assert.equal(h.check(33), DropReason.TRUNCATED); // past the buffer
  assert.equal(h.check(8), DropReason.NONE);
});

test('isIcmpError', () => {
  const errors = [3, 4, 5, 11, 12];
  for (let t = 0; t < 256; t++) assert.equal(isIcmpError(t), errors.includes(t), `type ${t}`);
});

test('shouldSendIcmpError: never about ICMP errors; RFC 1812 source rules', () => {
  assert.equal(shouldSendIcmpError(PING, 0, PING.length), true); // an echo request may get an error
  assert.equal(shouldSendIcmpError(KERNEL_PORT_UNREACH, 0, KERNEL_PORT_UNREACH.length), false); // an error may not
  assert.equal(shouldSendIcmpError(PING, 0, 20), false); // ICMP too short to tell
  assert.equal(shouldSendIcmpError(ODD_UDP, 0, ODD_UDP.length), true);
  const b = ODD_UDP.slice();
  const h = new Ipv4Header(b, 0);
  h.moreFrags = true; // first fragment: yes
  assert.equal(shouldSendIcmpError(b, 0, b.length), true);
  h.fragOffset = 1; // later fragment: no
  assert.equal(shouldSendIcmpError(b, 0, b.length), false);
  h.fragOffset = 0;
  h.moreFrags = false;
  const noSrc = ['0.0.0.0', '127.0.0.1', '127.255.0.9', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255'];
  for (const s of noSrc) {
    h.src = addr(s);
    assert.equal(shouldSendIcmpError(b, 0, b.length), false, s);
  }
  for (const s of ['10.244.1.2', '0.0.0.1', '126.255.255.255', '128.0.0.1', '223.255.255.255']) {
    h.src = addr(s);
    assert.equal(shouldSendIcmpError(b, 0, b.length), true, s);
  }
  h.src = addr('10.244.1.2');
  for (const d of ['224.0.0.251', '255.255.255.255']) {
    h.dst = addr(d);
    assert.equal(shouldSendIcmpError(b, 0, b.length), false, `dst ${d}`);
  }
});

test('buildIcmpError: golden time-exceeded about an odd-length UDP datagram', () => {
  const out = new Uint8Array(70).fill(0xa5);
  const n = buildIcmpError(out, 3, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 1422, ODD_UDP, 0, ODD_UDP.length, addr('192.168.64.1'));
  assert.equal(n, 59);
  assert.deepEqual(out.subarray(3, 3 + n), TTL_EXCEEDED_ODD); // MTU ignored: not frag-needed
  assert.deepEqual(out.subarray(0, 3), hex('a5a5a5'));
  assert.deepEqual(out.subarray(62), new Uint8Array(8).fill(0xa5));
});

test('buildIcmpError: ICMP part equals the kernel\'s port-unreachable byte for byte', () => {
  const out = new Uint8Array(100);
  const n = buildIcmpError(out, 0, ICMP_DEST_UNREACH, 3, 0, UDP_TO_CLOSED_PORT, 0, 32, addr('192.168.64.4'));
  assert.equal(n, 60);
  assert.deepEqual(out.subarray(20, 60), KERNEL_PORT_UNREACH.subarray(20, 60));
  const r = parseIpv4(out, 0, n);
  assert.equal(r.src, addr('192.168.64.4'));
  assert.equal(r.dst, addr('192.168.64.3'));
});

test('buildIcmpError: net-unreachable parses, checksums verify, quote is the original', () => {
  const out = new Uint8Array(200).fill(0xa5);
  const from = addr('10.244.1.0');
  const n = buildIcmpError(out, 0, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, 0, ODD_UDP, 0, 31, from);
  const r = parseIpv4(out, 0, n); // throws if the header or its checksum is bad
  assert.deepEqual(r, {
    src: from,
    dst: addr('192.168.64.3'),
    protocol: IPPROTO_ICMP,
    ttl: 64,
    tos: 0,
    ident: 0,
    dontFrag: false,
    payloadLen: 8 + 31,
  });
  const icmp = new IcmpHeader(out, 20);
  assert.equal(icmp.check(n - 20), DropReason.NONE);
  assert.equal(icmp.verifyChecksum(n - 20), true);
  assert.equal(icmp.type, ICMP_DEST_UNREACH);
  assert.equal(icmp.code, ICMP_NET_UNREACH);
  assert.equal(icmp.restOfHeader, 0);
  assert.deepEqual(out.subarray(28, n), ODD_UDP);
});

test('buildIcmpError: frag-needed carries the next-hop MTU; quote capped at 576 total', () => {
  const big = new Uint8Array(1500);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
  big.set(ODD_UDP.subarray(0, 20));
  const h = new Ipv4Header(big, 0);
  h.totalLength = 1500;
  h.dontFrag = true;
  h.fillChecksum();
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN + 10).fill(0xa5);
  const n = buildIcmpError(out, 0, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1422, big, 0, 1500, addr('10.244.1.0'));
  assert.equal(n, ICMP_ERROR_MAX_LEN);
  assert.equal(parseIpv4(out, 0, n).payloadLen, 556);
  const icmp = new IcmpHeader(out, 20);
  assert.equal(icmp.mtu, 1422);
  assert.equal(icmp.restOfHeader, 1422);
  assert.equal(icmp.verifyChecksum(556), true);
  assert.deepEqual(out.subarray(28, 576), big.subarray(0, 548));
  assert.deepEqual(out.subarray(576), new Uint8Array(10).fill(0xa5));
  // exactly at the cap
  const m = buildIcmpError(out, 0, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 1422, big, 0, 548, 0);
  assert.equal(m, 576);
});

test('buildIcmpError: refuses (returns 0, writes nothing) without room or a header', () => {
  const out = new Uint8Array(58).fill(0xa5);
  assert.equal(buildIcmpError(out, 0, 11, 0, 0, ODD_UDP, 0, 31, 1), 0); // needs 59
  assert.equal(buildIcmpError(out, 0, 11, 0, 0, ODD_UDP, 0, 19, 1), 0); // shorter than IPv4
  assert.equal(buildIcmpError(out, 0, 11, 0, 0, ODD_UDP, 0, 32, 1), 0); // past orig's buffer
  assert.deepEqual(out, new Uint8Array(58).fill(0xa5));
});

test('buildIcmpError in place: output overlapping the original in one slab', () => {
  const want = TTL_EXCEEDED_ODD;
  const from = addr('192.168.64.1');
  for (const [origOff, outOff] of [
    [28, 0], // headroom: the quote lands exactly where the original is
    [40, 0], // quote moves backwards
    [0, 10], // quote moves forwards over itself
    [5, 5], // output starts on the original
  ] as const) {
    const ab = new ArrayBuffer(160);
    const slab = new Uint8Array(ab, 9, 140);
    slab.set(ODD_UDP, origOff);
    const n = buildIcmpError(slab, outOff, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, slab, origOff, 31, from);
    assert.equal(n, 59);
    assert.deepEqual(slab.subarray(outOff, outOff + n), want, `orig ${origOff} out ${outOff}`);
  }
});

test('buildIcmpError into a view at a non-zero byteOffset from another buffer', () => {
  const ab = new ArrayBuffer(128);
  const out = new Uint8Array(ab, 17, 100);
  const n = buildIcmpError(out, 1, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0, ODD_UDP, 0, 31, addr('192.168.64.1'));
  assert.deepEqual(new Uint8Array(ab, 18, n), TTL_EXCEEDED_ODD);
});

test('IcmpHeader view at a non-zero byteOffset in a larger ArrayBuffer', () => {
  const ab = new ArrayBuffer(96);
  const slab = new Uint8Array(ab, 21, 70);
  slab.set(PING, 6);
  const h = new IcmpHeader().reset(slab, 26);
  assert.equal(h.check(32), DropReason.NONE);
  assert.equal(h.echoIdent, 0x125a);
  assert.equal(h.verifyChecksum(32), true);
  h.type = 0; // make it an echo reply
  h.fillChecksum(32);
  assert.equal(new Uint8Array(ab)[21 + 26], 0);
  assert.equal(h.checksum, 0x9da1); // the kernel's reply had 0x9da1
  assert.equal(h.verifyChecksum(32), true);
});
