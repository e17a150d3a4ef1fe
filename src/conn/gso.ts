/**
 * UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO) for the fast path, plus the
 * start-up self-test that decides whether either is used.
 *
 * The wire does not change: a GSO message is cut by the kernel (or the NIC)
 * into ordinary datagrams of `seg` bytes (the last may be shorter), each
 * one inner packet, so flannel peers see what they always saw. A GRO
 * receive hands back a run of such datagrams from one sender in one buffer;
 * datagram k of message i is slab[offs[i] + k*segs[i] ..] of length
 * min(segs[i], lens[i] - k*segs[i]); segs[i] = 0 means one datagram.
 *
 * The verbs come from src/native/index.ts, the addon's only loader; without
 * the addon the probe reports gso=false/gro=false with the reason.
 */
import { constants as osConstants } from 'node:os';
import { native, nativeLoadError, type NativeBinding } from '../native/index.js';

/** Receive cap a GRO socket needs: a coalesced run is up to 64 KB. */
export const GRO_RECV_CAP = 65_535;

/** Slots of udpSendSeg's `res` out-array (Int32Array of >= SEND_RES_LEN). */
export const SEND_RES_DATAGRAMS = 0;
/** errno of the first message not sent (0 = all sent), e.g. EAGAIN, EMSGSIZE. */
export const SEND_RES_ERRNO = 1;
/** GSO messages the kernel refused with EIO (their datagrams were resent one by one). */
export const SEND_RES_EIO = 2;
export const SEND_RES_LEN = 3;

/** The GSO half of the addon (src/native/index.ts loads it with the rest). Hot loops destructure it once. */
export type NativeGso = Pick<NativeBinding, 'udpSetGro' | 'udpSendSeg' | 'udpRecvGro' | 'GSO_MAX_SEGMENTS' | 'GSO_MAX_BYTES'
  | 'GSO_RES_LEN' | 'EIO'>;
export const gso: NativeGso = native;

/** See NativeBinding.udpSetGro. */
export function udpSetGro(fd: number, on: boolean): boolean {
  return gso.udpSetGro(fd, on);
}

/** See NativeBinding.udpSendSeg. */
export function udpSendSeg(fd: number, slab: Uint8Array, offs: Uint32Array, lens: Uint32Array,
  segs: Uint32Array, addrs: Uint32Array, ports: Uint32Array, count: number,
  res?: Int32Array): number {
  return gso.udpSendSeg(fd, slab, offs, lens, segs, addrs, ports, count, res);
}

/** See NativeBinding.udpRecvGro. */
export function udpRecvGro(fd: number, slab: Uint8Array, offs: Uint32Array, cap: number,
  lens: Uint32Array, segs: Uint32Array, addrs: Uint32Array, ports: Uint32Array,
  max: number): number {
  return gso.udpRecvGro(fd, slab, offs, cap, lens, segs, addrs, ports, max);
}

// ---- start-up self-test ----------------------------------------------------

export interface UdpOffloadProbe {
  /** UDP_SEGMENT sends split into the right datagrams with the right bytes. */
  readonly gso: boolean;
  /** UDP_GRO receives coalesced that run into one buffer with the right size. */
  readonly gro: boolean;
  /** What was seen, for the start-up log. */
  readonly detail: string;
}

const LOOPBACK = 0x7f000001;
const PROBE_SEG = 1000;
/** 3 full segments and a short last one: the last-segment case is where bugs live. */
const PROBE_LEN = 3 * PROBE_SEG + 300;
const PROBE_DATAGRAMS = 4;
const PROBE_BUDGET_MS = 150;

function errnoName(n: number): string {
  for (const [k, v] of Object.entries(osConstants.errno)) if (v === n) return k;
  return `errno ${n}`;
}

function codeOf(e: unknown): string {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : e instanceof Error ? e.message : String(e);
}

/** Byte j of segment k: distinct per segment so a swapped or shifted segment shows. */
function probeByte(j: number): number {
  const k = Math.floor(j / PROBE_SEG);
  return (k * 61 + (j % PROBE_SEG) * 7 + 1) & 0xff;
}

/** First index where slab[off..off+len) differs from the pattern at pos, or -1. */
function mismatch(slab: Uint8Array, off: number, len: number, pos: number): number {
  for (let j = 0; j < len; j++) if (slab[off + j] !== probeByte(pos + j)) return j;
  return -1;
}

/** What one probe receiver got: per message length and GRO size, total, first wrong byte. */
export interface ProbeSeen {
  readonly lens: number[];
  readonly segs: number[];
  bytes: number;
  /** Offset in the 3300-byte stream of the first wrong byte, -1 if none. */
  badAt: number;
}

function describe(v: ProbeSeen): string {
  return `lens [${v.lens.join(',')}] segs [${v.segs.join(',')}]` +
    (v.badAt >= 0 ? `, wrong byte at ${v.badAt}` : '');
}

/**
 * The probe's verdict from what the plain and the GRO receiver saw (split
 * out so the mangled-kernel cases are testable without such a kernel).
 */
export function judgeUdpOffloadProbe(plain: ProbeSeen, gro: ProbeSeen,
  groOn: boolean): UdpOffloadProbe {
  const gsoOk = plain.badAt < 0 && plain.bytes === PROBE_LEN &&
    plain.lens.join(',') === '1000,1000,1000,300' && plain.segs.every((x) => x === 0);
  if (!gsoOk) {
    return { gso: false, gro: false,
      detail: `UDP GSO self-test failed: a plain receiver of 3x1000+300 saw ${describe(plain)}` };
  }
  const groOk = groOn && gro.badAt < 0 && gro.bytes === PROBE_LEN && gro.lens.length === 1 &&
    gro.segs[0] === PROBE_SEG;
  if (groOk) {
    return { gso: true, gro: true,
      detail: 'UDP GSO splits 3x1000+300 right; UDP GRO returns it as one 3300-byte run' };
  }
  if (!groOn) {
    return { gso: true, gro: false, detail: 'UDP GSO ok; the kernel has no UDP_GRO (ENOPROTOOPT)' };
  }
  const separate = gro.badAt < 0 && gro.lens.join(',') === '1000,1000,1000,300';
  return { gso: true, gro: false, detail: separate
    ? 'UDP GSO ok; UDP_GRO is accepted but did not coalesce (4 separate datagrams)'
    : `UDP GSO ok; UDP GRO self-test failed: saw ${describe(gro)}` };
}

/**
 * Sends one UDP_SEGMENT message (3 × 1000 + 300 bytes) over 127.0.0.1 to a
 * GRO receiver and a plain receiver and checks both: the plain one must get
 * 4 datagrams of 1000/1000/1000/300 with the right bytes (GSO splits
 * right), the GRO one 3300 bytes with segs = 1000 (GRO coalesces; 4
 * separate right datagrams mean gso works but gro=false). Wrong sizes or
 * bytes give false with what was seen: some stable kernels mangle UDP GSO.
 * Brings nothing up; if lo is down the sockets fail and the detail says so.
 * Bounded to ~150 ms; every fd is closed on every path.
 */
export function probeUdpOffload(): UdpOffloadProbe {
  if (nativeLoadError !== undefined) {
    return { gso: false, gro: false, detail: nativeLoadError.message };
  }
  const fds: number[] = [];
  try {
    let tx: number, rxGro: number, rxPlain: number;
    try {
      tx = native.udpOpen(LOOPBACK, 0, false, 0, 0); fds.push(tx);
      rxGro = native.udpOpen(LOOPBACK, 0, false, 1 << 20, 0); fds.push(rxGro);
      rxPlain = native.udpOpen(LOOPBACK, 0, false, 1 << 20, 0); fds.push(rxPlain);
    } catch (e) {
      const c = codeOf(e);
      return { gso: false, gro: false, detail: `cannot bind UDP on 127.0.0.1 (${c})` +
        (c === 'EADDRNOTAVAIL' ? ': lo is down or has no 127.0.0.1 in this namespace' : '') };
    }
    let groOn: boolean;
    try {
      groOn = gso.udpSetGro(rxGro, true);
    } catch {
      groOn = false; // EBADF/ENOTSOCK cannot happen on our own fresh socket; treat as absent
    }

    // One slab: the probe message at 0, receive slots after it.
    const RX_SLOTS = 8;
    const slab = new Uint8Array(PROBE_LEN + RX_SLOTS * GRO_RECV_CAP);
    for (let j = 0; j < PROBE_LEN; j++) slab[j] = probeByte(j);
    const offs = new Uint32Array([0, 0]);
    const lens = new Uint32Array([PROBE_LEN, PROBE_LEN]);
    const segs = new Uint32Array([PROBE_SEG, PROBE_SEG]);
    const addrs = new Uint32Array([LOOPBACK, LOOPBACK]);
    const ports = new Uint32Array([native.udpLocalPort(rxGro), native.udpLocalPort(rxPlain)]);
    const res = new Int32Array(SEND_RES_LEN);
    let sent: number;
    try {
      sent = gso.udpSendSeg(tx, slab, offs, lens, segs, addrs, ports, 2, res);
    } catch (e) {
      return { gso: false, gro: false, detail: `UDP_SEGMENT send on 127.0.0.1 threw ${codeOf(e)}` };
    }
    if (sent !== 2) {
      const why = errnoName(res[SEND_RES_ERRNO]!);
      return { gso: false, gro: false, detail: `UDP_SEGMENT send on 127.0.0.1 failed (${why})` +
        (why === 'ENETUNREACH' ? ': lo is down in this namespace' : '') };
    }
    if (res[SEND_RES_DATAGRAMS] !== 2 * PROBE_DATAGRAMS) {
      return { gso: false, gro: false,
        detail: `udpSendSeg counted ${res[SEND_RES_DATAGRAMS]} datagrams, expected 8` };
    }

    const rOffs = new Uint32Array(RX_SLOTS);
    for (let i = 0; i < RX_SLOTS; i++) rOffs[i] = PROBE_LEN + i * GRO_RECV_CAP;
    const rLens = new Uint32Array(RX_SLOTS);
    const rSegs = new Uint32Array(RX_SLOTS);
    const rAddrs = new Uint32Array(RX_SLOTS);
    const rPorts = new Uint32Array(RX_SLOTS);
    const seen: [ProbeSeen, ProbeSeen] = [
      { lens: [], segs: [], bytes: 0, badAt: -1 },
      { lens: [], segs: [], bytes: 0, badAt: -1 },
    ];
    const deadline = Date.now() + PROBE_BUDGET_MS;
    const rx = [rxGro, rxPlain] as const;
    while (seen[0].bytes < PROBE_LEN || seen[1].bytes < PROBE_LEN) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      native.pollIn(rxGro, rxPlain, Math.min(left, 50));
      for (let s = 0; s < 2; s++) {
        const n = gso.udpRecvGro(rx[s]!, slab, rOffs, GRO_RECV_CAP, rLens, rSegs, rAddrs, rPorts,
          RX_SLOTS);
        const v = seen[s]!;
        for (let i = 0; i < n; i++) {
          const len = rLens[i]!;
          const bad = mismatch(slab, rOffs[i]!, Math.min(len, GRO_RECV_CAP, PROBE_LEN - v.bytes),
            v.bytes);
          if (bad >= 0 && v.badAt < 0) v.badAt = v.bytes + bad;
          v.lens.push(len);
          v.segs.push(rSegs[i]!);
          v.bytes += len;
        }
      }
    }

    return judgeUdpOffloadProbe(seen[1], seen[0], groOn);
  } catch (e) {
    // Start-up must go on with per-datagram I/O whatever went wrong here.
    return { gso: false, gro: false, detail: `UDP offload self-test failed: ${codeOf(e)}` };
  } finally {
    for (const fd of fds) {
      try { native.close(fd); } catch { /* already closed: nothing to release */ }
    }
  }
}
