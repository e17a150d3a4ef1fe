/**
 * Ethernet II header (IEEE 802.3 with an ethertype; no FCS, no VLAN tag):
 * the inner frame of a VXLAN packet. A view for the data path, a Repr for
 * the rest, and MAC address helpers that compare and copy in place.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Destination MAC (6 bytes)                  |
 *    +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                               |                               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *    |                      Source MAC (6 bytes)                     |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |           Ethertype           |  payload ...
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * MAC bit 0 of byte 0 (0x01): group (multicast/broadcast) address.
 * MAC bit 1 of byte 0 (0x02): locally administered (not from an OUI).
 */

import { randomFillSync } from 'node:crypto';
import { WeftError } from '../errors.js';
import { DropReason } from './drop-reason.js';
import { ETH_ADDR_LEN, ETH_HEADER_LEN } from './constants.js';

const F = {
  DST: 0,
  SRC: 6,
  ETHERTYPE: 12,
} as const;

const MAC_GROUP = 0x01;
const MAC_LOCAL = 0x02;

/** True when a[aOff .. +6) equals b[bOff .. +6). No allocation. */
export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] &&
    a[aOff + 4] === b[bOff + 4] &&
    a[aOff + 5] === b[bOff + 5]
  );
}

/** Copies 6 bytes src[srcOff ..] to dst[dstOff ..]. No allocation (unlike set(subarray())). */
export function copyMac(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number): void {
  dst[dstOff] = src[srcOff]!;
  dst[dstOff + 1] = src[srcOff + 1]!;
  dst[dstOff + 2] = src[srcOff + 2]!;
  dst[dstOff + 3] = src[srcOff + 3]!;
  dst[dstOff + 4] = src[srcOff + 4]!;
  dst[dstOff + 5] = src[srcOff + 5]!;
}

/** True when the 6 bytes at b[off] are all zero (an unset MAC). */
export function macIsZero(b: Uint8Array, off: number): boolean {
  return (b[off]! | b[off + 1]! | b[off + 2]! | b[off + 3]! | b[off + 4]! | b[off + 5]!) === 0;
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** "c6:d2:32:6f:8f:44" → 6 bytes. Throws WeftError 'EINVAL' on anything else. */
export function parseMac(text: string): Uint8Array {
  if (!MAC_RE.test(text)) {
    throw new WeftError('EINVAL', `invalid MAC address "${text}": expected six hex pairs separated by colons, e.g. c6:d2:32:6f:8f:44`);
  }
  const m = new Uint8Array(ETH_ADDR_LEN);
  for (let i = 0; i < ETH_ADDR_LEN; i++) m[i] = parseInt(text.slice(i * 3, i * 3 + 2), 16);
  return m;
}

/** 6 bytes at b[off] → "c6:d2:32:6f:8f:44" (lower case, as Linux and flannel print it). */
export function formatMac(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < ETH_ADDR_LEN; i++) {
    if (i > 0) s += ':';
    s += (b[off + i] ?? 0).toString(16).padStart(2, '0');
  }
  return s;
}

/**
 * A random unicast, locally administered MAC, as the kernel's
 * eth_random_addr() makes for a vxlan device flannel creates: byte 0 has
 * the local bit set and the group bit clear.
 */
export function randomLocallyAdministeredMac(): Uint8Array {
  const m = new Uint8Array(ETH_ADDR_LEN);
  randomFillSync(m);
  m[0] = (m[0]! & ~MAC_GROUP & 0xff) | MAC_LOCAL;
  return m;
}

/**
 * A view of an Ethernet II header at buf[off]; holds only buf and off.
 *
 * Promise: once check(len) has returned DropReason.NONE, no accessor reads
 * or writes outside buf[off .. off+14).
 */
export class EthernetHeader {
  static readonly LEN = ETH_HEADER_LEN;
  /** Offsets of the two addresses, for macEquals/copyMac on (buf, off + DST_OFF). */
  static readonly DST_OFF = F.DST;
  static readonly SRC_OFF = F.SRC;

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

  /** TRUNCATED when len < 14 or past the buffer. */
  check(len: number): DropReason {
    if (len < ETH_HEADER_LEN || this.off + len > this.buf.length) return DropReason.TRUNCATED;
    return DropReason.NONE;
  }

  get ethertype(): number {
    const i = this.off + F.ETHERTYPE;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }
  set ethertype(v: number) {
    const i = this.off + F.ETHERTYPE;
    this.buf[i] = v >> 8;
    this.buf[i + 1] = v;
  }

  /** Destination equals mac[macOff .. +6). */
  dstIs(mac: Uint8Array, macOff = 0): boolean {
    return macEquals(this.buf, this.off + F.DST, mac, macOff);
  }
  /** Source equals mac[macOff .. +6). */
  srcIs(mac: Uint8Array, macOff = 0): boolean {
    return macEquals(this.buf, this.off + F.SRC, mac, macOff);
  }
  /** Destination is a group address (multicast or broadcast). */
  get dstIsGroup(): boolean {
    return (this.buf[this.off + F.DST]! & MAC_GROUP) !== 0;
  }

  setDst(mac: Uint8Array, macOff = 0): void {
    copyMac(this.buf, this.off + F.DST, mac, macOff);
  }
  setSrc(mac: Uint8Array, macOff = 0): void {
    copyMac(this.buf, this.off + F.SRC, mac, macOff);
  }
}

const EMPTY = new Uint8Array(0);

export interface EthernetRepr {
  dst: Uint8Array;
  src: Uint8Array;
  ethertype: number;
}

const parseView = new EthernetHeader();

/** Parses the Ethernet II header of the frame buf[off .. off+len). Throws WeftError 'EPACKET'. */
export function parseEthernet(buf: Uint8Array, off: number, len: number): EthernetRepr {
  const h = parseView.reset(buf, off);
  if (h.check(len) !== DropReason.NONE) {
    throw new WeftError(
      'EPACKET',
      `invalid Ethernet frame: ${len} bytes is shorter than an Ethernet header (${ETH_HEADER_LEN}) or runs past the buffer`,
    );
  }
  return {
    dst: buf.slice(off + F.DST, off + F.DST + ETH_ADDR_LEN),
    src: buf.slice(off + F.SRC, off + F.SRC + ETH_ADDR_LEN),
    ethertype: h.ethertype,
  };
}

/** Writes the 14-byte header for `repr` at buf[off]; returns 14. Throws WeftError 'EPACKET' on bad fields or no room. */
export function emitEthernet(repr: EthernetRepr, buf: Uint8Array, off: number): number {
  if (repr.dst.length !== ETH_ADDR_LEN || repr.src.length !== ETH_ADDR_LEN) {
    throw new WeftError('EPACKET', `Ethernet addresses must be ${ETH_ADDR_LEN} bytes, got ${repr.dst.length} and ${repr.src.length}`);
  }
  if (!Number.isInteger(repr.ethertype) || repr.ethertype < 0 || repr.ethertype > 0xffff) {
    throw new WeftError('EPACKET', `ethertype must be an integer 0..0xffff, got ${repr.ethertype}`);
  }
  if (off < 0 || off + ETH_HEADER_LEN > buf.length) {
    throw new WeftError('EPACKET', `no room for an Ethernet header at offset ${off} of a ${buf.length}-byte buffer`);
  }
  const h = parseView.reset(buf, off);
  h.setDst(repr.dst);
  h.setSrc(repr.src);
  h.ethertype = repr.ethertype;
  return ETH_HEADER_LEN;
}
