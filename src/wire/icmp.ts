/**
 * ICMP for IPv4 (RFC 792): a header view and the error builder the data
 * path uses for net-unreachable, time-exceeded and fragmentation-needed.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |     Type      |     Code      |          Checksum             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                     Rest of header                            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      Internet Header + leading bytes of the original datagram  |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Rest of header: echo → identifier (4..5), sequence (6..7); errors →
 * unused (0), except frag-needed (RFC 1191): next-hop MTU in 6..7.
 * The checksum covers the whole ICMP message (no pseudo-header).
 */

import { foldChecksum, ipv4HeaderChecksum, onesSum } from './checksum.js';
import { DropReason } from './drop-reason.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_ERROR_MAX_LEN,
  ICMP_FRAG_NEEDED,
  ICMP_HEADER_LEN,
  IPPROTO_ICMP,
  IPV4_HEADER_MIN,
} from './constants.js';

const F = {
  TYPE: 0,
  CODE: 1,
  CHECKSUM: 2,
  REST: 4,
  ECHO_IDENT: 4,
  ECHO_SEQ: 6,
  MTU: 6,
} as const;

/** TTL of the ICMP errors weft originates (Linux's default ip_default_ttl). */
const ICMP_ERROR_TTL = 64;

/**
 * A view of an ICMP message at buf[off]; holds only buf and off.
 *
 * Promise: once check(len) has returned DropReason.NONE, no accessor reads
 * or writes outside buf[off .. off+len) (all fields are in the first 8
 * bytes; verifyChecksum/fillChecksum take len explicitly).
 */
export class IcmpHeader {
  static readonly LEN = ICMP_HEADER_LEN;

  buf: Uint8Array;
  off: number;

  constructor(buf: Uint8Array = EMPTY, off = 0) {
    this.buf = buf;
    this.off = off;
  }

  reset(buf: Uint8Array, off: number): this {
    this.buf = buf;
    this.off = off;
    return this;
  }

  /** `len` = bytes of ICMP message available (IP payload length). */
  check(len: number): DropReason {
    if (len < ICMP_HEADER_LEN || this.off + len > this.buf.length) return DropReason.TRUNCATED;
    return DropReason.NONE;
  }

  get type(): number {
    return this.buf[this.off + F.TYPE]!;
  }
  set type(v: number) {
    this.buf[this.off + F.TYPE] = v;
  }

  get code(): number {
    return this.buf[this.off + F.CODE]!;
  }
  set code(v: number) {
    this.buf[this.off + F.CODE] = v;
  }

  get checksum(): number {
    return this.u16(F.CHECKSUM);
  }
  set checksum(v: number) {
    this.setU16(F.CHECKSUM, v);
  }

  /** Bytes 4..7 as a uint32. */
  get restOfHeader(): number {
    const i = this.off + F.REST;
    const b = this.buf;
    return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
  }
  set restOfHeader(v: number) {
    const i = this.off + F.REST;
    const b = this.buf;
    b[i] = v >>> 24;
    b[i + 1] = v >>> 16;
    b[i + 2] = v >>> 8;
    b[i + 3] = v;
  }

  /** Next-hop MTU of a frag-needed error (RFC 1191), bytes 6..7. */
  get mtu(): number {
    return this.u16(F.MTU);
  }
  set mtu(v: number) {
    this.setU16(F.MTU, v);
  }

  /** Echo request/reply identifier, bytes 4..5. */
  get echoIdent(): number {
    return this.u16(F.ECHO_IDENT);
  }
  set echoIdent(v: number) {
    this.setU16(F.ECHO_IDENT, v);
  }

  /** Echo request/reply sequence number, bytes 6..7. */
  get echoSeq(): number {
    return this.u16(F.ECHO_SEQ);
  }
  set echoSeq(v: number) {
    this.setU16(F.ECHO_SEQ, v);
  }

  /** True when the checksum over the `len`-byte message is correct. */
  verifyChecksum(len: number): boolean {
    return foldChecksum(onesSum(this.buf, this.off, len)) === 0;
  }

  /** Computes and stores the checksum over the `len`-byte message. */
  fillChecksum(len: number): void {
    this.setU16(F.CHECKSUM, 0);
    this.setU16(F.CHECKSUM, foldChecksum(onesSum(this.buf, this.off, len)));
  }

  private u16(f: number): number {
    const i = this.off + f;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }
  private setU16(f: number, v: number): void {
    const i = this.off + f;
    this.buf[i] = v >> 8;
    this.buf[i + 1] = v;
  }
}

const EMPTY = new Uint8Array(0);

/** ICMP error types: dest unreachable, source quench, redirect, time exceeded, parameter problem. */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Whether weft may answer the IPv4 packet buf[off .. off+len) (check()
 * passed) with an ICMP error. No when (RFC 1812 4.3.2.7):
 * - it is itself an ICMP error (errors about errors would storm), or ICMP
 *   too short to tell;
 * - it is not the first fragment;
 * - its source does not name a single host: 0.0.0.0, 127/8, multicast
 *   224/4, class E 240/4 incl. 255.255.255.255;
 * - its destination is multicast, class E or broadcast — such a packet
 *   has no route by design.
 * flannel is stricter for net-unreachable (never about any ICMP); the
 * caller adds that rule where it applies.
 */
export function shouldSendIcmpError(buf: Uint8Array, off: number, len: number): boolean {
  if (buf[off + 9] === IPPROTO_ICMP) {
    const hl = (buf[off]! & 0x0f) << 2;
    if (len <= hl || isIcmpError(buf[off + hl]!)) return false;
  }
  if ((((buf[off + 6]! << 8) | buf[off + 7]!) & 0x1fff) !== 0) return false;
  const s0 = buf[off + 12]!;
  if (s0 === 127 || s0 >= 224) return false;
  if (s0 === 0 && buf[off + 13] === 0 && buf[off + 14] === 0 && buf[off + 15] === 0) return false;
  if (buf[off + 16]! >= 224) return false;
  return true;
}

/**
 * Writes at out[outOff] a complete IPv4 packet carrying an ICMP error of
 * `type`/`code` about the packet orig[origOff .. origOff+origLen):
 * src = `from`, dst = the original's source, TTL 64, protocol ICMP, TOS 0,
 * ident 0, DF clear. The ICMP body quotes the original's leading bytes,
 * as many as fit in ICMP_ERROR_MAX_LEN (576) total (RFC 1812 4.3.2.3).
 * `nextHopMtu` goes into bytes 6..7 for dest-unreachable/frag-needed and is
 * ignored otherwise. Both checksums are filled.
 *
 * Returns the total length written, or 0 (nothing written) when origLen is
 * shorter than an IPv4 header or out has no room. out and orig may be the
 * same buffer, even overlapping (the quote is copied like memmove).
 * Allocates nothing.
 */
export function buildIcmpError(
  out: Uint8Array,
  outOff: number,
  type: number,
  code: number,
  nextHopMtu: number,
  orig: Uint8Array,
  origOff: number,
  origLen: number,
  from: number,
): number {
  if (origLen < IPV4_HEADER_MIN || origOff + origLen > orig.length) return 0;
  let quoteLen = origLen;
  const room = ICMP_ERROR_MAX_LEN - IPV4_HEADER_MIN - ICMP_HEADER_LEN;
  if (quoteLen > room) quoteLen = room;
  const total = IPV4_HEADER_MIN + ICMP_HEADER_LEN + quoteLen;
  if (outOff < 0 || outOff + total > out.length) return 0;

  // Quote first: when out and orig overlap, the original's source address
  // may be overwritten by our header, so read it before anything else.
  const d0 = orig[origOff + 12]!;
  const d1 = orig[origOff + 13]!;
  const d2 = orig[origOff + 14]!;
  const d3 = orig[origOff + 15]!;
  copyBytes(out, outOff + IPV4_HEADER_MIN + ICMP_HEADER_LEN, orig, origOff, quoteLen);

  const o = outOff;
  out[o] = 0x45;
  out[o + 1] = 0;
  out[o + 2] = total >> 8;
  out[o + 3] = total;
  out[o + 4] = 0;
  out[o + 5] = 0;
  out[o + 6] = 0;
  out[o + 7] = 0;
  out[o + 8] = ICMP_ERROR_TTL;
  out[o + 9] = IPPROTO_ICMP;
  out[o + 10] = 0;
  out[o + 11] = 0;
  out[o + 12] = from >>> 24;
  out[o + 13] = from >>> 16;
  out[o + 14] = from >>> 8;
  out[o + 15] = from;
  out[o + 16] = d0;
  out[o + 17] = d1;
  out[o + 18] = d2;
  out[o + 19] = d3;
  const ipc = ipv4HeaderChecksum(out, o, IPV4_HEADER_MIN);
  out[o + 10] = ipc >> 8;
  out[o + 11] = ipc;

  const i = o + IPV4_HEADER_MIN;
  const mtu = type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED ? nextHopMtu : 0;
  out[i] = type;
  out[i + 1] = code;
  out[i + 2] = 0;
  out[i + 3] = 0;
  out[i + 4] = 0;
  out[i + 5] = 0;
  out[i + 6] = mtu >> 8;
  out[i + 7] = mtu;
  const c = foldChecksum(onesSum(out, i, ICMP_HEADER_LEN + quoteLen));
  out[i + 2] = c >> 8;
  out[i + 3] = c;
  return total;
}

/** memmove for two byte ranges that may share an ArrayBuffer. */
function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  const from = src.byteOffset + srcOff;
  const to = dst.byteOffset + dstOff;
  if (dst.buffer === src.buffer && to > from && to < from + len) {
    for (let k = len - 1; k >= 0; k--) dst[dstOff + k] = src[srcOff + k]!;
  } else if (dst.buffer !== src.buffer || to !== from) {
    for (let k = 0; k < len; k++) dst[dstOff + k] = src[srcOff + k]!;
  }
}
