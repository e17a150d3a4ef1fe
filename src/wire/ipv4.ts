/**
 * IPv4 header (RFC 791, section 3.1): a view over bytes for the data path
 * and a Repr (checked values) for config, tools and tests.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |Version|  IHL  |Type of Service|          Total Length         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |         Identification        |Flags|      Fragment Offset    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  Time to Live |    Protocol   |         Header Checksum       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                       Source Address                          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Destination Address                        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Options                    |    Padding    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Flags (3 bits): 0, DF (don't fragment), MF (more fragments).
 */

import { WeftError } from '../errors.js';
import { ipv4HeaderChecksum, updateChecksum16 } from './checksum.js';
import { DropReason } from './drop-reason.js';
import { IPV4_HEADER_MIN } from './constants.js';

const F = {
  VER_IHL: 0,
  TOS: 1,
  LENGTH: 2,
  IDENT: 4,
  FLG_OFF: 6,
  TTL: 8,
  PROTOCOL: 9,
  CHECKSUM: 10,
  SRC: 12,
  DST: 16,
} as const;

const FLAG_DF = 0x40; // in byte FLG_OFF
const FLAG_MF = 0x20; // in byte FLG_OFF
const FRAG_OFFSET_MASK = 0x1fff;

/**
 * A view of an IPv4 header at buf[off]. It holds only buf and off: reset()
 * re-points it without allocating, so one view serves a whole batch.
 *
 * Promise: once check(len) has returned DropReason.NONE for the current
 * (buf, off), no accessor reads or writes outside buf[off .. off+len):
 * every fixed field lies in the first 20 bytes and headerLen <= len.
 * Before that, accessors read whatever is there (a typed array returns
 * undefined → 0 bits past its end; nothing throws).
 */
export class Ipv4Header {
  static readonly MIN_LEN = IPV4_HEADER_MIN;

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
   * Validates a packet of `len` bytes at the view's offset. weft is strict:
   * a TUN read or a UDP datagram carries exactly one packet, so the total
   * length must equal `len` (no trailing bytes, no truncation). Does not
   * verify the checksum (see verifyChecksum()).
   */
  check(len: number): DropReason {
    const b = this.buf;
    const o = this.off;
    if (len < IPV4_HEADER_MIN || o + len > b.length) return DropReason.TRUNCATED;
    const vi = b[o]!;
    if (vi >> 4 !== 4) return DropReason.BAD_VERSION;
    const hl = (vi & 0x0f) << 2;
    if (hl < IPV4_HEADER_MIN || hl > len) return DropReason.BAD_HEADER_LENGTH;
    if (((b[o + F.LENGTH]! << 8) | b[o + F.LENGTH + 1]!) !== len) return DropReason.BAD_TOTAL_LENGTH;
    return DropReason.NONE;
  }

  get version(): number {
    return this.buf[this.off + F.VER_IHL]! >> 4;
  }
  set version(v: number) {
    const i = this.off + F.VER_IHL;
    this.buf[i] = ((v & 0x0f) << 4) | (this.buf[i]! & 0x0f);
  }

  /** Header length in bytes (IHL * 4). */
  get headerLen(): number {
    return (this.buf[this.off + F.VER_IHL]! & 0x0f) << 2;
  }
  /** Sets IHL from a length in bytes (a multiple of 4, 20..60). */
  set headerLen(v: number) {
    const i = this.off + F.VER_IHL;
    this.buf[i] = (this.buf[i]! & 0xf0) | ((v >> 2) & 0x0f);
  }

  get tos(): number {
    return this.buf[this.off + F.TOS]!;
  }
  set tos(v: number) {
    this.buf[this.off + F.TOS] = v;
  }

  get totalLength(): number {
    const i = this.off + F.LENGTH;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }
  set totalLength(v: number) {
    const i = this.off + F.LENGTH;
    this.buf[i] = v >> 8;
    this.buf[i + 1] = v;
  }

  get ident(): number {
    const i = this.off + F.IDENT;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }
  set ident(v: number) {
    const i = this.off + F.IDENT;
    this.buf[i] = v >> 8;
    this.buf[i + 1] = v;
  }

  get dontFrag(): boolean {
    return (this.buf[this.off + F.FLG_OFF]! & FLAG_DF) !== 0;
  }
  set dontFrag(v: boolean) {
    const i = this.off + F.FLG_OFF;
    this.buf[i] = v ? this.buf[i]! | FLAG_DF : this.buf[i]! & ~FLAG_DF;
  }

  get moreFrags(): boolean {
    return (this.buf[this.off + F.FLG_OFF]! & FLAG_MF) !== 0;
  }
  set moreFrags(v: boolean) {
    const i = this.off + F.FLG_OFF;
    this.buf[i] = v ? this.buf[i]! | FLAG_MF : this.buf[i]! & ~FLAG_MF;
  }

  /** Clears all three flag bits (reserved, DF, MF); keeps the offset. */
  clearFlags(): void {
    this.buf[this.off + F.FLG_OFF] &= 0x1f;
  }

  /** Fragment offset in 8-byte units (13 bits). */
  get fragOffset(): number {
    const i = this.off + F.FLG_OFF;
    return ((this.buf[i]! << 8) | this.buf[i + 1]!) & FRAG_OFFSET_MASK;
  }
  set fragOffset(v: number) {
    const i = this.off + F.FLG_OFF;
    this.buf[i] = (this.buf[i]! & 0xe0) | ((v >> 8) & 0x1f);
    this.buf[i + 1] = v;
  }

  get ttl(): number {
    return this.buf[this.off + F.TTL]!;
  }
  set ttl(v: number) {
    this.buf[this.off + F.TTL] = v;
  }

  get protocol(): number {
    return this.buf[this.off + F.PROTOCOL]!;
  }
  set protocol(v: number) {
    this.buf[this.off + F.PROTOCOL] = v;
  }

  get checksum(): number {
    const i = this.off + F.CHECKSUM;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }
  set checksum(v: number) {
    const i = this.off + F.CHECKSUM;
    this.buf[i] = v >> 8;
    this.buf[i + 1] = v;
  }

  /** Source address, uint32 host order. */
  get src(): number {
    return readU32(this.buf, this.off + F.SRC);
  }
  set src(v: number) {
    writeU32(this.buf, this.off + F.SRC, v);
  }

  /** Destination address, uint32 host order. */
  get dst(): number {
    return readU32(this.buf, this.off + F.DST);
  }
  set dst(v: number) {
    writeU32(this.buf, this.off + F.DST, v);
  }

  /** True when the stored header checksum is correct (options included). */
  verifyChecksum(): boolean {
    return ipv4HeaderChecksum(this.buf, this.off, this.headerLen) === this.checksum;
  }

  /** Computes and stores the header checksum (call after the last field write). */
  fillChecksum(): void {
    this.checksum = ipv4HeaderChecksum(this.buf, this.off, this.headerLen);
  }

  /**
   * Decrements the TTL and patches the header checksum incrementally
   * (RFC 1624) instead of re-summing the header: TTL and protocol share one
   * 16-bit word. Returns the new TTL; the caller drops at 0. A packet that
   * arrives with TTL 0 is left untouched and 0 is returned (never wrap to
   * 255). Quote the packet in an ICMP time-exceeded before or after this
   * call as you prefer: both headers are self-consistent.
   */
  decrementTtl(): number {
    const b = this.buf;
    const i = this.off + F.TTL;
    const ttl = b[i]!;
    if (ttl === 0) return 0;
    const proto = b[i + 1]!;
    const c = this.off + F.CHECKSUM;
    const sum = updateChecksum16((b[c]! << 8) | b[c + 1]!, (ttl << 8) | proto, ((ttl - 1) << 8) | proto);
    b[i] = ttl - 1;
    b[c] = sum >> 8;
    b[c + 1] = sum;
    return ttl - 1;
  }

  /** True for an unfragmented packet or the first fragment (offset 0). */
  isFirstFragment(): boolean {
    return this.fragOffset === 0;
  }
}

const EMPTY = new Uint8Array(0);

function readU32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function writeU32(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 24;
  b[i + 1] = v >>> 16;
  b[i + 2] = v >>> 8;
  b[i + 3] = v;
}

/**
 * Checked values of an unfragmented IPv4 header. Options are not
 * represented: parse skips them, emit writes a 20-byte header.
 */
export interface Ipv4Repr {
  /** uint32 host order */
  src: number;
  /** uint32 host order */
  dst: number;
  protocol: number;
  ttl: number;
  tos: number;
  ident: number;
  dontFrag: boolean;
  /** Bytes after the header (totalLength - headerLen). */
  payloadLen: number;
}

const parseView = new Ipv4Header();

/**
 * Parses and validates the packet buf[off .. off+len). Throws WeftError
 * 'EPACKET' naming the problem: any check() failure, a bad header
 * checksum, or a fragment (which a Repr cannot express). Not for the data
 * path: use Ipv4Header.check() there.
 */
export function parseIpv4(buf: Uint8Array, off: number, len: number): Ipv4Repr {
  const h = parseView.reset(buf, off);
  const r = h.check(len);
  if (r !== DropReason.NONE) {
    let what: string;
    switch (r) {
      case DropReason.TRUNCATED:
        what = `${len} bytes is shorter than an IPv4 header (${IPV4_HEADER_MIN}) or runs past the buffer`;
        break;
      case DropReason.BAD_VERSION:
        what = `version is ${h.version}, expected 4`;
        break;
      case DropReason.BAD_HEADER_LENGTH:
        what = `header length ${h.headerLen} is below ${IPV4_HEADER_MIN} or beyond the ${len} bytes given`;
        break;
      default:
        what = `total length ${h.totalLength} does not match the ${len} bytes given`;
        break;
    }
    throw new WeftError('EPACKET', `invalid IPv4 packet: ${what}`);
  }
  if (!h.verifyChecksum()) {
    const want = ipv4HeaderChecksum(buf, off, h.headerLen);
    throw new WeftError(
      'EPACKET',
      `invalid IPv4 packet: header checksum is 0x${hex16(h.checksum)}, expected 0x${hex16(want)}`,
    );
  }
  if (h.moreFrags || h.fragOffset !== 0) {
    throw new WeftError(
      'EPACKET',
      `IPv4 fragment (offset ${h.fragOffset * 8}, more fragments ${h.moreFrags}) cannot be represented; reassemble first`,
    );
  }
  return {
    src: h.src,
    dst: h.dst,
    protocol: h.protocol,
    ttl: h.ttl,
    tos: h.tos,
    ident: h.ident,
    dontFrag: h.dontFrag,
    payloadLen: h.totalLength - h.headerLen,
  };
}

/**
 * Writes a 20-byte IPv4 header (no options, not fragmented) for `repr` at
 * buf[off] with a correct checksum; returns 20. Throws WeftError 'EPACKET'
 * when the packet would exceed 65535 bytes or the buffer has no room for
 * the header (caller bugs, not bad input).
 */
export function emitIpv4(repr: Ipv4Repr, buf: Uint8Array, off: number): number {
  const total = IPV4_HEADER_MIN + repr.payloadLen;
  if (repr.payloadLen < 0 || total > 0xffff) {
    throw new WeftError('EPACKET', `IPv4 payload of ${repr.payloadLen} bytes does not fit a packet (max 65515)`);
  }
  if (off < 0 || off + IPV4_HEADER_MIN > buf.length) {
    throw new WeftError('EPACKET', `no room for an IPv4 header at offset ${off} of a ${buf.length}-byte buffer`);
  }
  buf[off + F.VER_IHL] = 0x45;
  buf[off + F.TOS] = repr.tos;
  buf[off + F.LENGTH] = total >> 8;
  buf[off + F.LENGTH + 1] = total;
  buf[off + F.IDENT] = repr.ident >> 8;
  buf[off + F.IDENT + 1] = repr.ident;
  buf[off + F.FLG_OFF] = repr.dontFrag ? FLAG_DF : 0;
  buf[off + F.FLG_OFF + 1] = 0;
  buf[off + F.TTL] = repr.ttl;
  buf[off + F.PROTOCOL] = repr.protocol;
  writeU32(buf, off + F.SRC, repr.src);
  writeU32(buf, off + F.DST, repr.dst);
  const c = ipv4HeaderChecksum(buf, off, IPV4_HEADER_MIN);
  buf[off + F.CHECKSUM] = c >> 8;
  buf[off + F.CHECKSUM + 1] = c;
  return IPV4_HEADER_MIN;
}

function hex16(v: number): string {
  return v.toString(16).padStart(4, '0');
}
