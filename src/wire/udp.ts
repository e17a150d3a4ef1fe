/**
 * UDP header (RFC 768): a view for the data path, a Repr for the rest.
 *
 *     0      7 8     15 16    23 24    31
 *    +--------+--------+--------+--------+
 *    |     Source      |   Destination   |
 *    |      Port       |      Port       |
 *    +--------+--------+--------+--------+
 *    |                 |                 |
 *    |     Length      |    Checksum     |
 *    +--------+--------+--------+--------+
 *    |
 *    |          data octets ...
 *    +---------------- ...
 *
 * Length counts header + data. Over IPv4 a checksum of 0 means "none";
 * a computed 0 is sent as 0xffff.
 */

import { WeftError } from '../errors.js';
import { onesSum, foldChecksum, pseudoHeaderSum } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { IPPROTO_UDP, UDP_HEADER_LEN } from './constants.js';

const F = {
  SRC_PORT: 0,
  DST_PORT: 2,
  LENGTH: 4,
  CHECKSUM: 6,
} as const;

/**
 * A view of a UDP header at buf[off]; holds only buf and off.
 *
 * Promise: once check(len) has returned DropReason.NONE, no accessor reads
 * or writes outside buf[off .. off+len), and `length` <= len.
 */
export class UdpHeader {
  static readonly LEN = UDP_HEADER_LEN;

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

  /**
   * Validates a UDP datagram of `len` bytes (the IP payload length).
   * TRUNCATED when len < 8 (or past the buffer); BAD_TOTAL_LENGTH when the
   * length field is below 8 or above len. A length field shorter than len
   * is accepted: RFC 768's length defines the datagram and the rest is
   * padding, which is what Linux does (it trims).
   */
  check(len: number): DropReason {
    const b = this.buf;
    const o = this.off;
    if (len < UDP_HEADER_LEN || o + len > b.length) return DropReason.TRUNCATED;
    const l = (b[o + F.LENGTH]! << 8) | b[o + F.LENGTH + 1]!;
    if (l < UDP_HEADER_LEN || l > len) return DropReason.BAD_TOTAL_LENGTH;
    return DropReason.NONE;
  }

  get srcPort(): number {
    return this.u16(F.SRC_PORT);
  }
  set srcPort(v: number) {
    this.setU16(F.SRC_PORT, v);
  }

  get dstPort(): number {
    return this.u16(F.DST_PORT);
  }
  set dstPort(v: number) {
    this.setU16(F.DST_PORT, v);
  }

  /** Header + data length in bytes. */
  get length(): number {
    return this.u16(F.LENGTH);
  }
  set length(v: number) {
    this.setU16(F.LENGTH, v);
  }

  get checksum(): number {
    return this.u16(F.CHECKSUM);
  }
  set checksum(v: number) {
    this.setU16(F.CHECKSUM, v);
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

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  /** Data bytes after the 8-byte header. */
  payloadLen: number;
}

const parseView = new UdpHeader();

/**
 * Parses the UDP datagram buf[off .. off+len). Throws WeftError 'EPACKET'
 * naming the problem. The checksum is not verified here (it needs the IP
 * addresses): compare udpChecksum() on the enclosing IPv4 packet.
 */
export function parseUdp(buf: Uint8Array, off: number, len: number): UdpRepr {
  const h = parseView.reset(buf, off);
  const r = h.check(len);
  if (r === DropReason.TRUNCATED) {
    throw new WeftError(
      'EPACKET',
      `invalid UDP datagram: ${len} bytes is shorter than a UDP header (${UDP_HEADER_LEN}) or runs past the buffer`,
    );
  }
  if (r !== DropReason.NONE) {
    throw new WeftError(
      'EPACKET',
      `invalid UDP datagram: length field ${h.length} is below ${UDP_HEADER_LEN} or beyond the ${len} bytes given`,
    );
  }
  return { srcPort: h.srcPort, dstPort: h.dstPort, payloadLen: h.length - UDP_HEADER_LEN };
}

/**
 * Writes an 8-byte UDP header for `repr` at buf[off] with checksum 0
 * ("none", legal over IPv4); returns 8. For a real checksum, place the
 * payload and the IPv4 header, then store udpChecksum(buf, ipOff).
 * Throws WeftError 'EPACKET' when the datagram exceeds 65535 bytes or the
 * buffer has no room (caller bugs).
 */
export function emitUdp(repr: UdpRepr, buf: Uint8Array, off: number): number {
  const len = UDP_HEADER_LEN + repr.payloadLen;
  if (repr.payloadLen < 0 || len > 0xffff) {
    throw new WeftError('EPACKET', `UDP payload of ${repr.payloadLen} bytes does not fit a datagram (max 65527)`);
  }
  if (off < 0 || off + UDP_HEADER_LEN > buf.length) {
    throw new WeftError('EPACKET', `no room for a UDP header at offset ${off} of a ${buf.length}-byte buffer`);
  }
  buf[off] = repr.srcPort >> 8;
  buf[off + 1] = repr.srcPort;
  buf[off + 2] = repr.dstPort >> 8;
  buf[off + 3] = repr.dstPort;
  buf[off + 4] = len >> 8;
  buf[off + 5] = len;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
  return UDP_HEADER_LEN;
}

/**
 * The UDP checksum for the IPv4 packet at buf[ipOff] (header already
 * valid: check() passed), over the pseudo-header, the UDP header with a
 * zero checksum field, and `length` bytes of datagram, read in place.
 * Returns the value to store at the UDP checksum field: a computed 0 comes
 * back as 0xffff (RFC 768), so the result is never 0. To verify a received
 * datagram, compare it with the stored field unless that is 0 ("none").
 */
export function udpChecksum(buf: Uint8Array, ipOff: number): number {
  const u = ipOff + ((buf[ipOff]! & 0x0f) << 2);
  const ulen = (buf[u + 4]! << 8) | buf[u + 5]!;
  const src = ((buf[ipOff + 12]! << 24) | (buf[ipOff + 13]! << 16) | (buf[ipOff + 14]! << 8) | buf[ipOff + 15]!) >>> 0;
  const dst = ((buf[ipOff + 16]! << 24) | (buf[ipOff + 17]! << 16) | (buf[ipOff + 18]! << 8) | buf[ipOff + 19]!) >>> 0;
  let s = pseudoHeaderSum(src, dst, IPPROTO_UDP, ulen);
  s = onesSum(buf, u, 6, s);
  s = onesSum(buf, u + UDP_HEADER_LEN, ulen - UDP_HEADER_LEN, s);
  const c = foldChecksum(s);
  return c === 0 ? 0xffff : c;
}
