/**
 * Runs inside a test-created network namespace (see native.test.ts):
 * `node child-net.js <scenario>`. Does the TUN/UDP work with the addon and
 * prints one JSON line of results for the parent test to assert on.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { native, type IoContext } from '../../src/native/index.js';
import { testBinding } from './io-binding.js';
import { echoRequest, ip4, summarize, udpPacket, type Ipv4Summary } from './packets.js';

const LO = ip4(127, 0, 0, 1);
const TUN_ADDR = ip4(10, 99, 0, 1);
const PEER = ip4(10, 99, 0, 2);

function sh(cmd: string): void {
  const [file, ...args] = cmd.split(' ');
  execFileSync(file as string, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
}

function errInfo(f: () => unknown): Record<string, unknown> {
  try {
    return { threw: false, value: f() as unknown };
  } catch (e) {
    const x = e as Error & { code?: string; errno?: number; syscall?: string };
    return { threw: true, name: x.name, code: x.code, errno: x.errno, syscall: x.syscall,
      message: x.message };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function scenarioTun(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const fds = native.tunOpen('wt0', 2, 0);
  out.fds = fds.length;
  out.names = fds.map((fd) => native.tunName(fd));
  // A TUN gets an IPv6 link-local address and would emit router
  // solicitations; keep the device quiet so reads see only our traffic.
  try { writeFileSync('/proc/sys/net/ipv6/conf/wt0/disable_ipv6', '1'); } catch { /* no IPv6 */ }
  sh('ip addr add 10.99.0.1/24 dev wt0');
  sh('ip link set wt0 up');

  const slab = new Uint8Array(64 * 2048);
  const offs = new Uint32Array(64);
  for (let i = 0; i < 64; i++) offs[i] = i * 2048;
  const lens = new Uint32Array(64);
  const fdA = fds[0] as number;
  const fdB = fds[1] as number;

  /** Reads both queues until `want` packets match or 2 s pass. */
  function collect(match: (s: Ipv4Summary) => boolean, want: number):
  { got: Array<Ipv4Summary & { queue: number; len: number }>; batchMax: number; others: number } {
    const got: Array<Ipv4Summary & { queue: number; len: number }> = [];
    let batchMax = 0;
    let others = 0;
    const deadline = Date.now() + 2000;
    while (got.length < want && Date.now() < deadline) {
      const ready = native.pollIn(fdA, fdB, 200);
      for (const [bit, fd, queue] of [[1, fdA, 0], [2, fdB, 1]] as const) {
        if ((ready & bit) === 0) continue;
        const n = native.tunRead(fd, slab, offs, 2048, lens, 64);
        batchMax = Math.max(batchMax, n);
        for (let i = 0; i < n; i++) {
          const s = summarize(slab, offs[i]!, lens[i]!);
          if (match(s)) got.push({ ...s, queue, len: lens[i]! });
          else others++;
        }
      }
    }
    return { got, batchMax, others };
  }

  // Kernel -> TUN: three datagrams of one flow (so one queue) to the peer.
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '10.99.0.1', r));
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((r, j) => sock.send(`to-peer-${i}`, 9999, '10.99.0.2',
      (e) => (e ? j(e) : r())));
  }
  const toPeer = collect((s) => s.version === 4 && s.dst === PEER && s.dport === 9999, 3);
  sock.close();
  out.toPeer = toPeer;

  // Nothing left: a read returns 0 (EAGAIN), never blocks.
  out.emptyReads = [native.tunRead(fdA, slab, offs, 2048, lens, 64),
    native.tunRead(fdB, slab, offs, 2048, lens, 64)];

  // TUN -> kernel: [udp, garbage, udp] → 2 accepted, both delivered.
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(9998, '10.99.0.1', r));
  const received: Array<{ msg: string; from: string; port: number }> = [];
  rx.on('message', (m, ri) => received.push({ msg: m.toString(), from: ri.address, port: ri.port }));
  const wslab = new Uint8Array(4096).fill(0xa5);
  const woffs = new Uint32Array([0, 1024, 2048]);
  const wlens = new Uint32Array(3);
  wlens[0] = udpPacket(wslab, 0, PEER, 7777, TUN_ADDR, 9998, Buffer.from('hello-tun-0'));
  wslab.fill(0, 1024, 1024 + 40); // version nibble 0: the TUN driver refuses it (EINVAL)
  wlens[1] = 40;
  wlens[2] = udpPacket(wslab, 2048, PEER, 7777, TUN_ADDR, 9998, Buffer.from('hello-tun-1'));
  out.writeAccepted = native.tunWrite(fdA, wslab, woffs, wlens, 3);
  for (let t = 0; t < 40 && received.length < 2; t++) await sleep(50);
  rx.close();
  out.received = received;

  // ICMP echo request to our own address: the kernel answers into the TUN.
  const elen = echoRequest(wslab, 0, PEER, TUN_ADDR, 0x4242, 1, Buffer.from('ping-weft'));
  out.echoWritten = native.tunWrite(fdB, wslab, new Uint32Array([0]), new Uint32Array([elen]), 1);
  out.echoReply = collect((s) => s.version === 4 && s.proto === 1 && s.icmpId === 0x4242, 1);

  for (const fd of fds) native.close(fd);
  let gone = false;
  try { sh('ip link show wt0'); } catch { gone = true; }
  out.goneAfterClose = gone;
  return out;
}

function scenarioTunErrors(): Record<string, unknown> {
  // A single-queue persistent TUN (what `ip tuntap` or an old flanneld leaves).
  sh('ip tuntap add dev wt1 mode tun');
  const out: Record<string, unknown> = {};
  out.existingSingleQueue = errInfo(() => native.tunOpen('wt1', 2, 0));
  // A failed multi-queue open must not leave fds behind: open/close works after.
  const fds = native.tunOpen('wt2', 3, native.TUN_VNET_HDR);
  out.vnetOpened = fds.length;
  out.vnetName = native.tunName(fds[2] as number);
  for (const fd of fds) native.close(fd);
  out.kernelNamed = (() => {
    const f = native.tunOpen('', 1, 0);
    const name = native.tunName(f[0] as number);
    native.close(f[0] as number);
    return name;
  })();
  return out;
}

function scenarioUdpReuse(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const a = native.udpOpen(LO, 40000, true, 0, 0);
  const b = errInfo(() => native.udpOpen(LO, 40000, true, 0, 0));
  out.reuseBoth = b;
  out.portA = native.udpLocalPort(a);
  const c = native.udpOpen(LO, 40001, false, 0, 0);
  out.noReuseSecond = errInfo(() => native.udpOpen(LO, 40001, false, 0, 0));
  out.noReuseOnReused = errInfo(() => native.udpOpen(LO, 40000, false, 0, 0));
  out.notLocal = errInfo(() => native.udpOpen(ip4(10, 1, 2, 3), 40002, false, 0, 0));
  native.close(a);
  native.close(c);
  if (!(b.threw as boolean)) native.close(b.value as number);
  return out;
}

function scenarioUdpBatch(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = native.udpOpen(LO, 0, false, 4 << 20, 4 << 20);
  const s = native.udpOpen(LO, 0, false, 0, 0);
  out.bufSizes = native.sockBufSizes(r);
  const rport = native.udpLocalPort(r);
  const sport = native.udpLocalPort(s);
  out.sport = sport;

  // Send slab: a view at a non-zero byteOffset to prove offsets are relative.
  const N = 64;
  const CAP = 512;
  const sab = new ArrayBuffer(16 + N * 1024);
  const sslab = new Uint8Array(sab, 16, N * 1024);
  const soffs = new Uint32Array(N);
  const slens = new Uint32Array(N);
  const addrs = new Uint32Array(N).fill(LO);
  const ports = new Uint32Array(N).fill(rport);
  for (let i = 0; i < N; i++) {
    soffs[i] = i * 1024;
    slens[i] = i === N - 1 ? 1000 : 20 + i * 7; // the last one is > CAP
    for (let j = 0; j < slens[i]!; j++) sslab[soffs[i]! + j] = j === 0 ? i : (i * 31 + j) & 255;
  }
  out.sent = native.udpSend(s, sslab, soffs, slens, addrs, ports, N);

  const rslab = new Uint8Array(N * 1024).fill(0xa5);
  const roffs = new Uint32Array(N);
  for (let i = 0; i < N; i++) roffs[i] = i * 1024;
  const rlens = new Uint32Array(N);
  const raddrs = new Uint32Array(N);
  const rports = new Uint32Array(N);
  const seen = new Map<number, { len: number; ok: boolean; addr: number; port: number }>();
  const calls: number[] = [];
  const deadline = Date.now() + 2000;
  let guardOk = true;
  while (seen.size < N && Date.now() < deadline) {
    if (native.pollIn(r, -1, 200) === 0) continue;
    const n = native.udpRecv(r, rslab, roffs, CAP, rlens, raddrs, rports, N);
    calls.push(n);
    for (let i = 0; i < n; i++) {
      const o = roffs[i]!;
      const id = rslab[o]!;
      const len = rlens[i]!;
      let ok = len === (id === N - 1 ? 1000 : 20 + id * 7);
      for (let j = 1; j < Math.min(len, CAP); j++) if (rslab[o + j] !== ((id * 31 + j) & 255)) ok = false;
      // Bytes past cap in each slot must be untouched.
      for (let j = CAP; j < 1024; j++) if (rslab[o + j] !== 0xa5) guardOk = false;
      seen.set(id, { len, ok, addr: raddrs[i]!, port: rports[i]! });
    }
  }
  out.calls = calls;
  out.received = seen.size;
  out.allOk = [...seen.values()].every((v) => v.ok);
  out.allFrom = [...seen.values()].every((v) => v.addr === LO && v.port === sport);
  out.bigLen = seen.get(N - 1)?.len ?? -1;
  out.cap = CAP;
  out.guardOk = guardOk;
  out.emptyRecv = native.udpRecv(r, rslab, roffs, CAP, rlens, raddrs, rports, N);

  // Per-message failures are skipped, the rest still go out:
  // [ok, 70000 B (EMSGSIZE), ok, port 0 (EINVAL), unroutable (ENETUNREACH), ok].
  const big = new Uint8Array(70_000 + 4096);
  const k = new Uint32Array([0, 4096, 0, 0, 0, 0]);
  const kl = new Uint32Array([5, 70_000, 6, 7, 8, 9]);
  const ka = new Uint32Array([LO, LO, LO, LO, ip4(10, 1, 2, 3), LO]);
  const kp = new Uint32Array([rport, rport, rport, 0, rport, rport]);
  big[0] = 200;
  out.skipSent = native.udpSend(s, big, k, kl, ka, kp, 6);
  native.pollIn(r, -1, 500);
  const m = native.udpRecv(r, rslab, roffs, CAP, rlens, raddrs, rports, N);
  out.skipReceivedLens = Array.from(rlens.subarray(0, m));

  native.close(r);
  native.close(s);
  return out;
}

function scenarioPoll(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = native.udpOpen(LO, 0, false, 0, 0);
  const s = native.udpOpen(LO, 0, false, 0, 0);
  let t0 = performance.now();
  out.timeoutResult = native.pollIn(r, s, 150);
  out.timeoutMs = performance.now() - t0;
  t0 = performance.now();
  out.zeroResult = native.pollIn(r, -1, 0);
  out.zeroMs = performance.now() - t0;

  const slab = new Uint8Array(16);
  const one = new Uint32Array([0]);
  const four = new Uint32Array([4]);
  native.udpSend(s, slab, one, four, new Uint32Array([LO]),
    new Uint32Array([native.udpLocalPort(r)]), 1);
  out.bReady = native.pollIn(s, r, 1000);
  out.aReady = native.pollIn(r, s, 1000);

  native.close(r);
  // A closed fd polls as "readable" (POLLNVAL) so the next read reports it.
  out.closedPoll = native.pollIn(r, -1, 0);
  out.closeTwice = errInfo(() => native.close(r));
  out.readClosed = errInfo(() => native.tunRead(r, slab, one, 4, new Uint32Array(1), 1));
  out.recvClosed = errInfo(() => native.udpRecv(r, slab, one, 4, new Uint32Array(1),
    new Uint32Array(1), new Uint32Array(1), 1));
  out.portClosed = errInfo(() => native.udpLocalPort(r));
  out.tunNameOnSocket = errInfo(() => native.tunName(s));
  native.close(s);
  return out;
}

/**
 * ioBind/ioWait with two loopback sockets standing in for the TUN queue and
 * the UDP socket (tun_read_run is plain read(), which a datagram socket
 * answers one datagram at a time).
 */
function scenarioIoWait(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const tun = native.udpOpen(LO, 0, false, 0, 0);
  const udp = native.udpOpen(LO, 0, false, 0, 0);
  const src = native.udpOpen(LO, 0, false, 0, 0);
  const max = 8;
  const cap = 100;
  const slab = new Uint8Array(2 * max * 128);
  const a = testBinding(tun, udp, slab, max, cap);
  const { tunOffs, udpOffs } = a;
  const io = native.ioBind(a);
  const shift = native.IO_WAIT_UDP_SHIFT;
  let t0 = performance.now();
  out.timeout = native.ioWait(io, 120);
  out.timeoutMs = performance.now() - t0;
  // A signalled wake eventfd ends the wait at once and is drained: the next wait runs to its timeout.
  const wake = native.eventfdOpen();
  const woken = native.ioBind({ ...a, wakeFd: wake });
  native.eventfdSignal(wake);
  native.eventfdSignal(wake);
  t0 = performance.now();
  out.woken = native.ioWait(woken, 5000);
  out.wokenMs = performance.now() - t0;
  t0 = performance.now();
  out.drained = native.ioWait(woken, 120);
  out.drainedMs = performance.now() - t0;
  native.ioUnbind(woken);
  native.close(wake);

  const send = (fd: number, lens: number[], fill: number): number => {
    const buf = new Uint8Array(lens.length * 256);
    const offs = Uint32Array.from(lens, (_, i) => i * 256);
    lens.forEach((l, i) => buf.fill(fill + i, i * 256, i * 256 + l));
    return native.udpSend(src, buf, offs, Uint32Array.from(lens), new Uint32Array(lens.length).fill(LO),
      new Uint32Array(lens.length).fill(native.udpLocalPort(fd)), lens.length);
  };
  // Three "TUN packets" and two datagrams waiting: one call reads them all.
  send(tun, [10, 20, 30], 1);
  send(udp, [40, 150], 7);
  t0 = performance.now();
  const got = native.ioWait(io, 1000);
  out.bothMs = performance.now() - t0;
  out.tunN = got & ((1 << shift) - 1);
  out.udpN = got >>> shift;
  out.tunLens = [...a.tunLens.subarray(0, 3)];
  out.udpLens = [...a.udpLens.subarray(0, 2)];
  out.tunBytesOk = [0, 1, 2].every((i) => slab[tunOffs[i]!] === 1 + i && slab[tunOffs[i]! + (i + 1) * 10 - 1] === 1 + i);
  out.udpFrom = a.udpAddrs[0] === LO && a.udpPorts[0] === native.udpLocalPort(src);
  // The 150-byte datagram was cut at cap (lens > cap shows it) and nothing
  // was written past its slot.
  out.guardOk = slab[udpOffs[1]! + cap] === 0;
  // Only the socket ready: the TUN count is 0.
  send(udp, [5], 9);
  out.udpOnly = native.ioWait(io, 1000);

  // ioSend: the bound socket sends the queued slab bytes (udp slot 0 holds
  // the 40-byte datagram read above) to the address queued.
  a.sendOffs[0] = udpOffs[0]!;
  a.sendLens[0] = 40;
  a.sendAddrs[0] = LO;
  a.sendPorts[0] = native.udpLocalPort(src);
  out.sent = native.ioSend(io, 1);
  out.sendRes = [...a.sendRes];
  const rx = new Uint8Array(256);
  const rxLens = new Uint32Array(1);
  const rxAddrs = new Uint32Array(1);
  const rxPorts = new Uint32Array(1);
  native.pollIn(src, -1, 1000);
  out.echoed = native.udpRecv(src, rx, new Uint32Array([0]), 256, rxLens, rxAddrs, rxPorts, 1);
  out.echoLen = rxLens[0];
  // Bytes 0..4 were overwritten by the 5-byte datagram since; the rest is the first one's.
  out.echoFrom = rxPorts[0] === native.udpLocalPort(udp) && rx[0] === 9 && rx[39] === 7;
  a.sendOffs[0] = slab.length;
  out.sendBeyond = errInfo(() => native.ioSend(io, 1));
  out.sendTooMany = errInfo(() => native.ioSend(io, 5));

  // Bind-time checks name the problem.
  out.shortArray = errInfo(() => native.ioBind({ ...a, tunLens: new Uint32Array(max - 1) }));
  out.beyondSlab = errInfo(() => native.ioBind({ ...a, udpOffs: new Uint32Array(max).fill(slab.length - 10) }));
  out.notTyped = errInfo(() => native.ioBind({ ...a, slab: [] as unknown as Uint8Array }));
  out.badMax = errInfo(() => native.ioBind({ ...a, max: native.MAX_BATCH + 1 }));
  out.notObject = errInfo(() => native.ioBind(7 as unknown as typeof a));
  // Only a context ioBind made is taken: not a buffer shaped like the old
  // ArrayBuffer contexts, not an object, not another external-less value.
  const forged = (v: unknown): IoContext => v as IoContext;
  out.bufferCtx = errInfo(() => native.ioWait(forged(new ArrayBuffer(65536)), 0));
  out.objectCtx = errInfo(() => native.ioSend(forged({ bound: a }), 0));
  out.numberCtx = errInfo(() => native.ioDeliver(forged(0), 0, false));
  // The context shows JS nothing to read or write.
  out.ctxShape = [typeof io, Object.getOwnPropertyNames(io).length, Object.getOwnPropertySymbols(io).length];
  // A context ended by ioUnbind refuses every use, and a second unbind.
  const ended = native.ioBind(a);
  native.ioUnbind(ended);
  out.unbound = errInfo(() => native.ioWait(ended, 0));
  out.unboundSend = errInfo(() => native.ioSend(ended, 0));
  out.unboundTwice = errInfo(() => native.ioUnbind(ended));
  // Offsets are copied when bound: changing the array afterwards (even to
  // an offset past the slab) does not move where the wait reads to.
  send(tun, [3], 4);
  tunOffs[0] = slab.length;
  out.movedOffset = errInfo(() => native.ioWait(io, 1000));
  out.movedRead = [a.tunLens[0], slab[0], slab[2]];
  tunOffs[0] = 0;
  native.close(tun);
  out.closedTun = errInfo(() => native.ioWait(io, 0));
  native.close(udp);
  native.close(src);
  return out;
}

/**
 * ioDeliver on a TUN with IFF_VNET_HDR: the bound queue merged and written
 * in one call; merged without writing; the checks on queue and merge area.
 */
async function scenarioIoDeliver(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const fd = native.tunOpen('wt4', 1, native.TUN_VNET_HDR)[0]!;
  try { writeFileSync('/proc/sys/net/ipv6/conf/wt4/disable_ipv6', '1'); } catch { /* no IPv6 */ }
  const addr = ip4(10, 97, 0, 1);
  const peer = ip4(10, 97, 0, 2);
  sh('ip addr add 10.97.0.1/24 dev wt4');
  sh('ip link set wt4 up');
  const udp = native.udpOpen(LO, 0, false, 0, 0);
  const rx = dgram.createSocket('udp4');
  await new Promise<void>((r) => rx.bind(9996, '10.97.0.1', r));
  const received: string[] = [];
  rx.on('message', (m) => received.push(m.toString()));

  // Four input slots of 2 KB, then an 8 KB merge area.
  const slab = new Uint8Array(16384);
  const mergeOff = 8192;
  const bind = (mergeFlags: number, mergeCap = 8192): { io: IoContext; offs: Uint32Array; lens: Uint32Array; res: Uint32Array } => {
    const offs = Uint32Array.from([0, 2048, 4096, 6144]);
    const lens = new Uint32Array(4);
    const res = new Uint32Array(2);
    const io = native.ioBind(testBinding(fd, udp, slab, 1, 100, {
      deliverOffs: offs, deliverLens: lens, deliverMax: 4, deliverRes: res, mergeOff, mergeCap, mergeFlags, maxPktLen: 1500,
    }));
    return { io, offs, lens, res };
  };
  const datagram = (q: { lens: Uint32Array }, i: number, text: string): void => {
    q.lens[i] = udpPacket(slab, i * 2048, peer, 7777, addr, 9996, Buffer.from(text.padEnd(600, '.')));
  };

  // Written one by one (flags 0): [udp, garbage, udp] -> 2 written, 1 refused, both delivered.
  const plain = bind(0);
  datagram(plain, 0, 'deliver-0');
  slab.fill(0, 2048, 2048 + 40); // version nibble 0: the TUN driver refuses it
  plain.lens[1] = 40;
  datagram(plain, 2, 'deliver-1');
  out.written = native.ioDeliver(plain.io, 3, true);
  out.res = [...plain.res];
  for (let t = 0; t < 40 && received.length < 2; t++) await sleep(50);
  out.received = received.map((m) => m.replace(/\.+$/, ''));

  // Merged, not written: three datagrams of one flow become one UDP_L4 super-packet.
  const merging = bind(2);
  for (let i = 0; i < 3; i++) datagram(merging, i, `merge-${i}`);
  out.mergedWritten = native.ioDeliver(merging.io, 3, false);
  out.mergedRes = [...merging.res];
  out.mergedHdr = { gsoType: slab[mergeOff + 1], gsoSize: slab[mergeOff + 4]! | (slab[mergeOff + 5]! << 8),
    ipLen: (slab[mergeOff + 12]! << 8) | slab[mergeOff + 13]! };

  // More packets than one merge area holds: it loops (1 KB area, ~630 B each).
  const small = bind(0, 1024);
  for (let i = 0; i < 4; i++) datagram(small, i, `small-${i}`);
  out.loopWritten = native.ioDeliver(small.io, 4, false);
  out.loopRes = [...small.res];

  // The checks, before anything is merged or written.
  out.tooMany = errInfo(() => native.ioDeliver(plain.io, 5, true));
  plain.offs[0] = mergeOff + 100;
  out.overlap = errInfo(() => native.ioDeliver(plain.io, 1, true));
  plain.offs[0] = slab.length - 10;
  out.beyond = errInfo(() => native.ioDeliver(plain.io, 1, true));
  const tiny = bind(0, 100);
  datagram(tiny, 0, 'tiny');
  out.areaTooSmall = errInfo(() => native.ioDeliver(tiny.io, 1, true));
  out.areaBeyond = errInfo(() => bind(0, 16384));
  rx.close();
  native.close(fd);
  out.closedTun = errInfo(() => native.ioDeliver(merging.io, 1, true));
  native.close(udp);
  return out;
}

const scenarios: Record<string, () => Promise<Record<string, unknown>> | Record<string, unknown>> = {
  tun: scenarioTun,
  'tun-errors': scenarioTunErrors,
  'udp-reuse': scenarioUdpReuse,
  'udp-batch': scenarioUdpBatch,
  poll: scenarioPoll,
  'io-wait': scenarioIoWait,
  'io-deliver': scenarioIoDeliver,
};

const name = process.argv[2] ?? '';
const run = scenarios[name];
if (run === undefined) {
  console.error(`unknown scenario "${name}"`);
  process.exit(2);
}
console.log(JSON.stringify(await run()));
