/**
 * Runs inside a test-created namespace (see gso.test.ts):
 * `node child-gso.js <scenario> [args]`. Prints one JSON line at the end;
 * `recv` prints {"ready":true} first, once its sockets are bound.
 */
import { readdirSync } from 'node:fs';
import { native } from '../../src/native/index.js';
import {
  GRO_RECV_CAP, SEND_RES_LEN, gso, probeUdpOffload,
} from '../../src/conn/gso.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';
import { patternByte } from './gso-pattern.js';

function errInfo(f: () => unknown): Record<string, unknown> {
  try {
    return { threw: false, value: f() as unknown };
  } catch (e) {
    const x = e as Error & { code?: string; errno?: number; syscall?: string };
    return { threw: true, name: x.name, code: x.code, errno: x.errno, syscall: x.syscall,
      message: x.message };
  }
}

/** "10.0.0.2:7000" -> [addr, port] */
function hostPort(s: string): [number, number] {
  const [a, p] = s.split(':');
  return [parseIpv4(a!), Number(p)];
}

const [scenario, ...args] = process.argv.slice(2);
const out: Record<string, unknown> = {};

if (scenario === 'probe') {
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const t0 = performance.now();
  Object.assign(out, probeUdpOffload());
  out.ms = performance.now() - t0;
  out.fdsLeaked = readdirSync('/proc/self/fd').length - fdsBefore;
} else if (scenario === 'ebadf') {
  const fd = native.udpOpen(0x7f000001, 0, false, 0, 0);
  native.close(fd);
  const slab = new Uint8Array(4096);
  const one = new Uint32Array([100]);
  const zero = new Uint32Array([0]);
  out.send = errInfo(() => gso.udpSendSeg(fd, slab, zero, one, zero, new Uint32Array([0x7f000001]),
    new Uint32Array([9]), 1));
  out.recv = errInfo(() => gso.udpRecvGro(fd, slab, zero, 2048, new Uint32Array(1),
    new Uint32Array(1), new Uint32Array(1), new Uint32Array(1), 1));
  out.gro = errInfo(() => gso.udpSetGro(fd, true));
} else if (scenario === 'recv') {
  // recv <gro 0|1> <expectBytes total> <timeoutMs> <addr:port>...
  const [groArg, expectArg, timeoutArg, ...binds] = args;
  const useGro = groArg === '1';
  const expect = Number(expectArg);
  const timeoutMs = Number(timeoutArg);
  const fds = binds.map((b) => {
    const [a, p] = hostPort(b);
    const fd = native.udpOpen(a, p, false, 8 << 20, 0);
    if (useGro && !gso.udpSetGro(fd, true)) throw new Error('UDP_GRO refused');
    return fd;
  });
  console.log(JSON.stringify({ ready: true }));
  const SLOTS = useGro ? 16 : 64;
  const cap = useGro ? GRO_RECV_CAP : 2048;
  const slab = new Uint8Array(SLOTS * cap);
  const offs = new Uint32Array(SLOTS);
  for (let i = 0; i < SLOTS; i++) offs[i] = i * cap;
  const lens = new Uint32Array(SLOTS);
  const segs = new Uint32Array(SLOTS);
  const addrs = new Uint32Array(SLOTS);
  const ports = new Uint32Array(SLOTS);
  const per = fds.map(() => ({ lens: [] as number[], segs: [] as number[], calls: 0,
    chunks: [] as Buffer[] }));
  let bytes = 0;
  const start = performance.now();
  // Until every byte is in, or the timeout.
  while (bytes < expect) {
    if (performance.now() - start > timeoutMs) break;
    let got = 0;
    for (let s = 0; s < fds.length; s++) {
      const n = useGro
        ? gso.udpRecvGro(fds[s]!, slab, offs, cap, lens, segs, addrs, ports, SLOTS)
        : native.udpRecv(fds[s]!, slab, offs, cap, lens, addrs, ports, SLOTS);
      if (n === 0) continue;
      got += n;
      const p = per[s]!;
      p.calls++;
      for (let i = 0; i < n; i++) {
        const len = lens[i]!;
        const seg = useGro ? segs[i]! : 0;
        bytes += len;
        p.lens.push(len);
        p.segs.push(seg);
        p.chunks.push(Buffer.from(slab.subarray(offs[i]!, offs[i]! + Math.min(len, cap))));
      }
    }
    if (got === 0) native.pollIn(fds[0]!, fds[1] ?? -1, 20);
  }
  for (const fd of fds) native.close(fd);
  out.sockets = per.map((p) => ({ lens: p.lens, segs: p.segs, calls: p.calls,
    data: Buffer.concat(p.chunks).toString('base64') }));
} else if (scenario === 'send') {
  // send <spec JSON: [{to:"a:p", len, seg}]>  -- message m filled with patternByte(m, .)
  const spec = JSON.parse(args[0]!) as { to: string; len: number; seg: number }[];
  const n = spec.length;
  let total = 0;
  for (const s of spec) total += s.len;
  const slab = new Uint8Array(total + 64);
  slab.fill(0xa5);
  const offs = new Uint32Array(n);
  const lens = new Uint32Array(n);
  const segs = new Uint32Array(n);
  const addrs = new Uint32Array(n);
  const ports = new Uint32Array(n);
  let off = 7; // an odd offset, on purpose
  spec.forEach((s, m) => {
    offs[m] = off;
    lens[m] = s.len;
    segs[m] = s.seg;
    [addrs[m], ports[m]] = hostPort(s.to);
    for (let j = 0; j < s.len; j++) slab[off + j] = patternByte(m, j);
    off += s.len;
  });
  const res = new Int32Array(SEND_RES_LEN);
  const fd = native.udpOpen(0, 0, false, 0, 4 << 20);
  out.sent = gso.udpSendSeg(fd, slab, offs, lens, segs, addrs, ports, n, res);
  out.res = Array.from(res);
  native.close(fd);
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(out));
