/**
 * Start-up self-test of TUN offloads. Some kernels accept TUNSETOFFLOAD
 * and then mangle merged (GSO) writes, so "the ioctl worked" is not
 * enough: we write real merged super-packets made by vnetCoalesce and check
 * that the kernel delivers the bytes to local sockets.
 *
 * It runs in the daemon's own network namespace (offload support is a
 * property of the kernel, but sysctls and modules are per host) on a
 * throw-away TUN `wprobe<pid>` with 169.254.253.1 peer 169.254.253.2 (/32
 * each, link-local, a pair flannel never routes). We play 169.254.253.2:
 *   TCP: SYN -> read SYN-ACK -> one merged ACK super-packet of 4 x 1000
 *        bytes that also completes the handshake -> a node:net server on
 *        169.254.253.1 must read exactly those 4000 bytes.
 *   UDP (only when TUN_F_USO4 is accepted): one merged UDP_L4 packet of
 *        3 x 700 bytes -> a node:dgram socket must receive 3 datagrams.
 * Closing the fd deletes the device (and its address and route) on every
 * path. Bounded: ≤ ~300 ms per part, ≤ 1 s in all.
 */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { native } from '../native/index.js';
import { foldChecksum, ipv4HeaderChecksum, onesSum, pseudoHeaderSum } from '../wire/checksum.js';
import {
  GSO_TCPV4, GSO_UDP_L4, MERGE_TCP, MERGE_UDP, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN,
  TUN_F_USO4, TUN_F_USO6, VIRTIO_NET_HDR_LEN, tunSetOffload, vnetCoalesce,
} from './vnet.js';

export const PROBE_LOCAL = '169.254.253.1';
export const PROBE_PEER = '169.254.253.2';
const LOCAL = 0xa9fefd01;
const PEER = 0xa9fefd02;

/** Everything weft asks for. */
export const ALL_OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 |
  TUN_F_USO6;

export interface TunOffloadProbe {
  /** TUNSETOFFLOAD flags the kernel accepted (0 = none; read path stays plain). */
  accepted: number;
  /** A merged TCP write (vnetCoalesce MERGE_TCP) was delivered intact. */
  tcpMerge: boolean;
  /** A merged UDP write (MERGE_UDP) was delivered intact; false without USO4. */
  udpMerge: boolean;
  /** One line for the start-up log. */
  detail: string;
}

const ACK = 0x10, SYN = 0x02, PSH = 0x08;

/** IPv4 + TCP/UDP with full checksums (probe packets only; allocates). */
function packet(proto: number, sport: number, dport: number, payload: Uint8Array,
  tcp?: { seq: number; ack: number; flags: number; mss?: number }): Uint8Array {
  const opt = tcp?.mss !== undefined ? 4 : 0;
  const l4h = proto === 6 ? 20 + opt : 8;
  const total = 20 + l4h + payload.length;
  const p = new Uint8Array(total);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, total);
  v.setUint16(6, 0x4000);
  p[8] = 64;
  p[9] = proto;
  v.setUint32(12, PEER);
  v.setUint32(16, LOCAL);
  v.setUint16(10, ipv4HeaderChecksum(p, 0, 20));
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  if (tcp !== undefined) {
    v.setUint32(24, tcp.seq >>> 0);
    v.setUint32(28, tcp.ack >>> 0);
    p[32] = (l4h / 4) << 4;
    p[33] = tcp.flags;
    v.setUint16(34, 65535);
    if (opt) { p[40] = 2; p[41] = 4; v.setUint16(42, tcp.mss!); }
  } else {
    v.setUint16(24, 8 + payload.length);
  }
  p.set(payload, 20 + l4h);
  const sum = onesSum(p, 20, total - 20, pseudoHeaderSum(PEER, LOCAL, proto, total - 20));
  let c = foldChecksum(sum);
  if (c === 0 && proto === 17) c = 0xffff;
  v.setUint16(proto === 6 ? 36 : 26, c);
  return p;
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 131) % 251;
  return b;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Coalesces `pkts` with `flags` into the slab; returns the one merged output or a reason. */
function merge(pkts: Uint8Array[], flags: number, wantType: number):
  { slab: Uint8Array; off: number; len: number } | string {
  const slab = new Uint8Array(131072);
  const offs = new Uint32Array(pkts.length), lens = new Uint32Array(pkts.length);
  let o = 0;
  pkts.forEach((p, i) => { slab.set(p, o); offs[i] = o; lens[i] = p.length; o += p.length; });
  const outOffs = new Uint32Array(pkts.length), outLens = new Uint32Array(pkts.length);
  const res = new Uint32Array(1);
  const k = vnetCoalesce(slab, offs, lens, pkts.length, 65536, 65536, outOffs, outLens,
    pkts.length, flags, res);
  if (k !== 1 || slab[outOffs[0]! + 1] !== wantType) return `vnetCoalesce made ${k} packets`;
  return { slab, off: outOffs[0]!, len: outLens[0]! };
}

function write(fd: number, slab: Uint8Array, off: number, len: number): boolean {
  return native.tunWrite(fd, slab, Uint32Array.of(off), Uint32Array.of(len), 1) === 1;
}

/** Waits (≤ ms) for a packet from the TUN for which `match` returns a value. */
async function readMatch<T>(fd: number, ms: number, match: (p: Uint8Array, len: number) => T | undefined):
  Promise<T | undefined> {
  const slab = new Uint8Array(65536 + VIRTIO_NET_HDR_LEN);
  const offs = Uint32Array.of(0), lens = new Uint32Array(1);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (native.tunRead(fd, slab, offs, slab.length, lens, 1) === 1) {
      const r = match(slab.subarray(VIRTIO_NET_HDR_LEN), lens[0]! - VIRTIO_NET_HDR_LEN);
      if (r !== undefined) return r;
      continue;
    }
    await sleep(1);
  }
  return undefined;
}

async function probeTcp(fd: number): Promise<string | true> {
  let server: Server | undefined;
  let conn: Socket | undefined;
  try {
    const received: Uint8Array[] = [];
    let got = 0;
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => { done = r; });
    server = createServer((c) => {
      conn = c;
      c.on('data', (d: Buffer) => { received.push(d); got += d.length; if (got >= 4000) done(); });
      c.on('error', () => {});
    });
    const s = server;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, PROBE_LOCAL, () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    const sport = 40000 + (process.pid % 20000);
    const isn = 0x10000000;
    const syn = packet(6, sport, port, new Uint8Array(0), { seq: isn, ack: 0, flags: SYN, mss: 1400 });
    const hdr = new Uint8Array(VIRTIO_NET_HDR_LEN + syn.length);
    hdr.set(syn, VIRTIO_NET_HDR_LEN);
    if (!write(fd, hdr, 0, hdr.length)) return 'the TUN refused a SYN';
    const serverIsn = await readMatch(fd, 300, (p, len) => {
      if (len < 40 || p[9] !== 6) return undefined;
      const v = new DataView(p.buffer, p.byteOffset, len);
      if (v.getUint16(20) !== port || v.getUint16(22) !== sport || p[33] !== (SYN | ACK)) return undefined;
      return v.getUint32(24);
    });
    if (serverIsn === undefined) return 'no SYN-ACK from the kernel';
    const data = pattern(4000, 3);
    const segs: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      segs.push(packet(6, sport, port, data.subarray(i * 1000, (i + 1) * 1000), {
        seq: isn + 1 + i * 1000, ack: serverIsn + 1, flags: i === 3 ? ACK | PSH : ACK,
      }));
    }
    const m = merge(segs, MERGE_TCP, GSO_TCPV4);
    if (typeof m === 'string') return m;
    if (!write(fd, m.slab, m.off, m.len)) return 'the TUN refused a merged TCP write';
    await Promise.race([finished, sleep(300)]);
    if (got !== 4000) return `TCP socket read ${got} of 4000 bytes`;
    const all = Buffer.concat(received);
    if (!all.equals(data)) return 'TCP socket read different bytes';
    return true;
  } finally {
    conn?.destroy();
    server?.close();
  }
}

async function probeUdp(fd: number): Promise<string | true> {
  const sock = createSocket('udp4');
  try {
    const got: Buffer[] = [];
    let done: () => void = () => {};
    const finished = new Promise<void>((r) => { done = r; });
    sock.on('message', (d) => { got.push(d); if (got.length >= 3) done(); });
    sock.on('error', () => {});
    await new Promise<void>((resolve) => sock.bind(0, PROBE_LOCAL, () => resolve()));
    const port = sock.address().port;
    const dgrams = [0, 1, 2].map((i) => pattern(700, 10 + i));
    const m = merge(dgrams.map((d) => packet(17, 40001, port, d)), MERGE_UDP, GSO_UDP_L4);
    if (typeof m === 'string') return m;
    if (!write(fd, m.slab, m.off, m.len)) return 'the TUN refused a merged UDP write';
    await Promise.race([finished, sleep(300)]);
    if (got.length !== 3) return `UDP socket got ${got.length} of 3 datagrams`;
    for (let i = 0; i < 3; i++) {
      if (!got[i]!.equals(dgrams[i]!)) return `UDP datagram ${i} differs`;
    }
    return true;
  } finally {
    sock.close();
  }
}

/**
 * Opens a temporary TUN, asks for `want` offloads (falling back to
 * without USO, then without offloads), and checks merged writes. Never
 * throws for a kernel that lacks something; the result says what works.
 */
export async function probeTunOffload(want: number = ALL_OFFLOADS): Promise<TunOffloadProbe> {
  const name = `wprobe${process.pid}`.slice(0, 15);
  let fd = -1;
  const r: TunOffloadProbe = { accepted: 0, tcpMerge: false, udpMerge: false, detail: '' };
  const notes: string[] = [];
  try {
    fd = native.tunOpen(name, 1, native.TUN_VNET_HDR)[0]!;
    for (const flags of [want, want & ~(TUN_F_USO4 | TUN_F_USO6)]) {
      try {
        tunSetOffload(fd, flags);
        r.accepted = flags;
        break;
      } catch (e) {
        notes.push(`TUNSETOFFLOAD 0x${flags.toString(16)}: ${(e as Error).message}`);
      }
    }
    execFileSync('ip', ['addr', 'add', PROBE_LOCAL, 'peer', PROBE_PEER, 'dev', name],
      { stdio: 'pipe', timeout: 2000 });
    execFileSync('ip', ['link', 'set', name, 'up'], { stdio: 'pipe', timeout: 2000 });
    const tcp = await probeTcp(fd);
    r.tcpMerge = tcp === true;
    notes.push(`merged TCP write: ${tcp === true ? 'ok' : tcp}`);
    if (r.accepted & TUN_F_USO4) {
      const udp = await probeUdp(fd);
      r.udpMerge = udp === true;
      notes.push(`merged UDP write: ${udp === true ? 'ok' : udp}`);
    } else {
      notes.push('merged UDP write: skipped (no USO)');
    }
  } catch (e) {
    notes.push(`probe failed: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    if (fd >= 0) native.close(fd);
  }
  r.detail = `TUN offloads 0x${r.accepted.toString(16)}; ${notes.join('; ')}`;
  return r;
}
