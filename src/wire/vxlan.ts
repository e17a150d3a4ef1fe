/**
 * VXLAN header (RFC 7348, section 5): a view for the data path, a Repr for
 * the rest. It is the UDP payload; the inner Ethernet frame follows it.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |R|R|R|R|I|R|R|R|            Reserved                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                VXLAN Network Identifier (VNI) |   Reserved    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Group Based Policy extension (draft-smith-vxlan-group-policy), the
 * kernel's `gbp` option: the first word becomes
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |G|R|R|R|I|R|R|R|R|D|R|R|A|R|R|R|        Group Policy ID        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * G: policy id present; D: don't learn; A: policy already applied.
 *
 * Acceptance follows Linux (drivers/net/vxlan, vxlan_rcv) rather than the
 * RFC's "ignore reserved bits": the I flag is required, and any other bit
 * the device does not parse makes the packet malformed. That is: without
 * gbp, the first word must be exactly 0x08000000 and the last byte 0; with
 * gbp and G set, the kernel consumes all of bytes 1..3 (VXLAN_GBP_USED_BITS
 * = G | 0xFFFFFF), so only byte 0's other reserved bits and the last byte
 * must be 0.
 */

import { WeftError } from '../errors.js';
import { DropReason } from './drop-reason.js';
import { VXLAN_HEADER_LEN, VXLAN_VNI_MAX } from './constants.js';

const F = {
  FLAGS: 0,
  /** GBP: flags byte 2 (D, A) */
  GBP_FLAGS: 1,
  /** GBP: 16-bit group policy id */
  GBP_POLICY: 2,
  VNI: 4,
  RESERVED2: 7,
} as const;

/** I: the VNI is valid (must be set). In byte FLAGS. */
export const VXLAN_FLAG_I = 0x08;
/** GBP G: group policy id present. In byte FLAGS. */
export const VXLAN_FLAG_G = 0x80;
/** GBP D: don't learn the source. In byte GBP_FLAGS. */
export const VXLAN_GBP_D = 0x40;
/** GBP A: policy applied. In byte GBP_FLAGS. */
export const VXLAN_GBP_A = 0x08;

/**
 * A view of a VXLAN header at buf[off]; holds only buf and off.
 *
 * Promise: once check(len) has returned DropReason.NONE, no accessor reads
 * or writes outside buf[off .. off+8).
 */
export class VxlanHeader {
  static readonly LEN = VXLAN_HEADER_LEN;

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
   * Validates a VXLAN payload of `len` bytes (header + inner frame).
   * TRUNCATED when len < 8 or past the buffer; BAD_VXLAN_FLAGS when I is
   * clear or a bit the device does not parse is set (`gbp`: the device
   * was configured with the GBP extension, which makes G, D, A and the
   * policy id legal).
   */
  check(len: number, gbp = false): DropReason {
    const b = this.buf;
    const o = this.off;
    if (len < VXLAN_HEADER_LEN || o + len > b.length) return DropReason.TRUNCATED;
    const f = b[o + F.FLAGS]!;
    if ((f & VXLAN_FLAG_I) === 0 || b[o + F.RESERVED2]! !== 0) return DropReason.BAD_VXLAN_FLAGS;
    if (gbp && f === (VXLAN_FLAG_G | VXLAN_FLAG_I)) return DropReason.NONE;
    if (f !== VXLAN_FLAG_I || (b[o + 1]! | b[o + 2]! | b[o + 3]!) !== 0) return DropReason.BAD_VXLAN_FLAGS;
    return DropReason.NONE;
  }

  get flags(): number {
    return this.buf[this.off + F.FLAGS]!;
  }
  set flags(v: number) {
    this.buf[this.off + F.FLAGS] = v;
  }

  /** 24-bit VXLAN network identifier. */
  get vni(): number {
    const i = this.off + F.VNI;
    return (this.buf[i]! << 16) | (this.buf[i + 1]! << 8) | this.buf[i + 2]!;
  }
  set vni(v: number) {
    const i = this.off + F.VNI;
    this.buf[i] = v >> 16;
    this.buf[i + 1] = v >> 8;
    this.buf[i + 2] = v;
  }

  /** GBP: G bit (a group policy id is present). */
  get hasGbp(): boolean {
    return (this.buf[this.off + F.FLAGS]! & VXLAN_FLAG_G) !== 0;
  }
  /** GBP: D bit. Meaningful only when hasGbp. */
  get gbpDontLearn(): boolean {
    return (this.buf[this.off + F.GBP_FLAGS]! & VXLAN_GBP_D) !== 0;
  }
  /** GBP: A bit. Meaningful only when hasGbp. */
  get gbpPolicyApplied(): boolean {
    return (this.buf[this.off + F.GBP_FLAGS]! & VXLAN_GBP_A) !== 0;
  }
  /** GBP: 16-bit group policy id. Meaningful only when hasGbp. */
  get gbpPolicyId(): number {
    const i = this.off + F.GBP_POLICY;
    return (this.buf[i]! << 8) | this.buf[i + 1]!;
  }

  /** Writes a plain header (I flag, `vni`, every reserved field 0): what Linux sends without a mark. */
  writePlain(vni: number): void {
    const b = this.buf;
    const o = this.off;
    b[o] = VXLAN_FLAG_I;
    b[o + 1] = 0;
    b[o + 2] = 0;
    b[o + 3] = 0;
    b[o + 4] = vni >> 16;
    b[o + 5] = vni >> 8;
    b[o + 6] = vni;
    b[o + 7] = 0;
  }
}

const EMPTY = new Uint8Array(0);

export interface VxlanGbp {
  /** 16-bit group policy id */
  policyId: number;
  dontLearn: boolean;
  policyApplied: boolean;
}

export interface VxlanRepr {
  vni: number;
  /** The GBP extension when the G bit is set; null for a plain header. */
  gbp: VxlanGbp | null;
}

const parseView = new VxlanHeader();

/**
 * Parses the VXLAN header at buf[off] of a payload of `len` bytes; `gbp`
 * as in check(). Throws WeftError 'EPACKET' naming the problem.
 */
export function parseVxlan(buf: Uint8Array, off: number, len: number, gbp = false): VxlanRepr {
  const h = parseView.reset(buf, off);
  const r = h.check(len, gbp);
  if (r === DropReason.TRUNCATED) {
    throw new WeftError(
      'EPACKET',
      `invalid VXLAN packet: ${len} bytes is shorter than a VXLAN header (${VXLAN_HEADER_LEN}) or runs past the buffer`,
    );
  }
  if (r !== DropReason.NONE) {
    const word = Array.from(buf.subarray(off, off + VXLAN_HEADER_LEN), (x) => x.toString(16).padStart(2, '0')).join('');
    throw new WeftError(
      'EPACKET',
      `invalid VXLAN header ${word}: the I flag must be set and reserved bits clear` +
        (gbp ? ' (GBP: G, D, A and the policy id allowed)' : ' (GBP not enabled, so G, D, A and a policy id are reserved)'),
    );
  }
  return {
    vni: h.vni,
    gbp: h.hasGbp
      ? { policyId: h.gbpPolicyId, dontLearn: h.gbpDontLearn, policyApplied: h.gbpPolicyApplied }
      : null,
  };
}

/**
 * Writes the 8-byte header for `repr` at buf[off]; returns 8. Throws
 * WeftError 'EPACKET' on a VNI or policy id out of range or no room
 * (caller bugs).
 */
export function emitVxlan(repr: VxlanRepr, buf: Uint8Array, off: number): number {
  if (!Number.isInteger(repr.vni) || repr.vni < 0 || repr.vni > VXLAN_VNI_MAX) {
    throw new WeftError('EPACKET', `VXLAN VNI must be an integer 0..${VXLAN_VNI_MAX}, got ${repr.vni}`);
  }
  const g = repr.gbp;
  if (g !== null && (!Number.isInteger(g.policyId) || g.policyId < 0 || g.policyId > 0xffff)) {
    throw new WeftError('EPACKET', `VXLAN GBP policy id must be an integer 0..65535, got ${g.policyId}`);
  }
  if (off < 0 || off + VXLAN_HEADER_LEN > buf.length) {
    throw new WeftError('EPACKET', `no room for a VXLAN header at offset ${off} of a ${buf.length}-byte buffer`);
  }
  const h = parseView.reset(buf, off);
  h.writePlain(repr.vni);
  if (g !== null) {
    buf[off] = VXLAN_FLAG_G | VXLAN_FLAG_I;
    buf[off + F.GBP_FLAGS] = (g.dontLearn ? VXLAN_GBP_D : 0) | (g.policyApplied ? VXLAN_GBP_A : 0);
    buf[off + F.GBP_POLICY] = g.policyId >> 8;
    buf[off + F.GBP_POLICY + 1] = g.policyId;
  }
  return VXLAN_HEADER_LEN;
}
