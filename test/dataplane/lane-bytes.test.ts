/**
 * A lane doing real I/O without root: its "TUN" is a FIFO (one packet
 * written, one read) and its socket a loopback UDP socket, with a Node
 * dgram socket as the peer. Checks the exact bytes on the wire for both
 * backends — flannel udp carries the inner packet whole with its TTL
 * decremented; VXLAN puts the 8-byte header and the inner Ethernet header
 * in front of the unchanged packet — and the exact packet written back to
 * the TUN for a datagram from the peer. The warm-up tests run the same
 * code dry, so only these see where the prefix goes and how long it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildEioPreload } from '../helpers/eio-preload.js';
import { allocSlots, makeLane, type WorkerBackend, type WorkerInit } from '../../src/dataplane/lane.js';
import { createControlBlock, createStats, CTL, STAT } from '../../src/dataplane/layout.js';
import { writeEcho } from '../../src/dataplane/warmup.js';
import { writeTsoRead } from './tso-read.js';
import { openUdp } from '../../src/conn/udp.js';
import { native } from '../../src/native/index.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { ipv4HeaderChecksum } from '../../src/wire/checksum.js';
import { VIRTIO_NET_HDR_LEN } from '../../src/offload/vnet.js';

const LOOPBACK = 0x7f000001;
const LOCAL_NET = 0x0af40100; // 10.244.1.0/24
const PEER_NET = 0x0af40200; // 10.244.2.0/24
const POD_A = LOCAL_NET + 2;
const POD_B = PEER_NET + 2;
const LOCAL_MAC = [0x02, 0x42, 0x0a, 0xf4, 0x01, 0x00];
const PEER_MAC = [0x02, 0x42, 0x0a, 0xf4, 0x02, 0x00];
const VNI = 0x123456;
const MAX_PEERS = 4;

/** `p` with its TTL one lower and the header checksum computed afresh. */
function hop(p: Uint8Array): Uint8Array {
  const q = Uint8Array.from(p);
  q[8] = q[8]! - 1;
  q[10] = 0;
  q[11] = 0;
  const c = ipv4HeaderChecksum(q, 0, 20);
  q[10] = c >>> 8;
  q[11] = c & 0xff;
  return q;
}

/** RFC 7348 header (I flag, VNI) and the inner Ethernet header, then `p`. */
function vxlan(dstMac: readonly number[], srcMac: readonly number[], p: Uint8Array): Uint8Array {
  return Uint8Array.from([0x08, 0, 0, 0, VNI >>> 16, (VNI >>> 8) & 0xff, VNI & 0xff, 0, ...dstMac, ...srcMac, 0x08, 0x00,
    ...p]);
}

function echo(type: number, src: number, dst: number): Uint8Array {
  const b = new Uint8Array(256);
  return b.slice(0, writeEcho(b, 0, type, src, dst, 64, 7, 56));
}

const CASES = [['udp', false], ['udp', true], ['vxlan', false], ['vxlan', true]] as const;

for (const [kind, vnet] of CASES) {
  const mode = vnet ? 'virtio-net headers' : 'plain';
  test(`lane on a FIFO and a loopback socket (${kind}, ${mode}): the exact datagram to the peer, the exact packet from it`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-lane-'));
    const fifo = join(dir, 'tun');
    execFileSync('mkfifo', [fifo]);
    const tunFd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const udpFd = openUdp({ addr: LOOPBACK, port: 0, reusePort: false });
    const peer = createSocket('udp4');
    await new Promise<void>((res) => peer.bind(0, '127.0.0.1', res));
    const received: { msg: Buffer; from: RemoteInfo }[] = [];
    peer.on('message', (msg, from) => received.push({ msg, from }));
    const lanePort = native.udpLocalPort(udpFd);
    const peerPort = peer.address().port;
    let lane: ReturnType<typeof makeLane> | null = null;
    try {
      // VXLAN sends to the network's port; flannel udp to the peer's.
      const backend: WorkerBackend = kind === 'udp' ? { kind: 'udp' }
        : { kind: 'vxlan', vni: VNI, mac: LOCAL_MAC, port: peerPort, gbp: false };
      const writer = RouteTableWriter.create({ maxRoutes: 4, maxPeers: MAX_PEERS });
      writer.setLocalSubnet(LOCAL_NET, 24);
      writer.upsertPeer('peer', { addr: LOOPBACK, port: peerPort, subnet: PEER_NET, prefixLen: 24, mac: Uint8Array.from(PEER_MAC) });
      await writer.commit();
      const init: WorkerInit = {
        index: 0, tunFd, udpFd, wakeFd: -1, control: createControlBlock().buffer as SharedArrayBuffer, routes: writer.buffer,
        stats: createStats(1, MAX_PEERS).buffer, maxPeers: MAX_PEERS, workers: 1, pathMtu: 1472,
        offloads: { vnet, gso: false, gro: false, merge: 0 }, backend, keepWarmMs: 0,
      };
      lane = makeLane(init, allocSlots(init));
      const stats = new Float64Array(init.stats);
      const reader = new RouteTableReader(writer.buffer, 0);
      lane.use(reader, stats, new Int32Array(init.control), false);
      const shift = native.IO_WAIT_UDP_SHIFT;
      // With IFF_VNET_HDR every TUN read and write starts with a
      // virtio_net_hdr; all zero is a whole packet, checksums done.
      const onTun = (p: Uint8Array): Uint8Array =>
        (vnet ? Uint8Array.from([...new Uint8Array(VIRTIO_NET_HDR_LEN), ...p]) : p);

      // Pod A pings pod B: one packet read from the TUN, one datagram out.
      const ping = echo(8, POD_A, POD_B);
      writeSync(tunFd, onTun(ping));
      const got = native.ioWait(lane.io, 1000);
      assert.equal(got, 1, 'one TUN packet read, no datagram');
      assert.equal(lane.step(got), false);
      for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(received.length, 1, 'one datagram at the peer');
      const out = received[0]!;
      assert.equal(out.from.port, lanePort);
      const wire = kind === 'udp' ? hop(ping) : vxlan(PEER_MAC, LOCAL_MAC, ping);
      assert.deepEqual(new Uint8Array(out.msg), wire);

      // Pod B answers: one datagram in, the exact packet written to the TUN.
      const reply = echo(0, POD_B, POD_A);
      await new Promise<void>((res, rej) => peer.send(kind === 'udp' ? reply : vxlan(LOCAL_MAC, PEER_MAC, reply), lanePort,
        '127.0.0.1', (e) => (e ? rej(e) : res())));
      let in2 = 0;
      for (let i = 0; i < 100 && in2 === 0; i++) in2 = native.ioWait(lane.io, 10);
      assert.equal(in2, 1 << shift, 'one datagram received, no TUN packet');
      assert.equal(lane.step(in2), false);
      const back = new Uint8Array(2048);
      const n = readSync(tunFd, back);
      assert.deepEqual(back.subarray(0, n), onTun(kind === 'udp' ? hop(reply) : reply));
      assert.equal(stats[STAT.TUN_TX_PKTS], 1);
      assert.equal(stats[STAT.UDP_TX_PKTS], 1);
      // And the turn obeys stop.
      new Int32Array(init.control)[CTL.STOP] = 1;
      assert.equal(lane.step(0), true);
      reader.release();
    } finally {
      if (lane !== null) native.ioUnbind(lane.io);
      peer.close();
      native.close(udpFd);
      closeSync(tunFd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('TUN offload on, UDP GSO off: 8 super-packets of 45 segments in one read are all sent, none dropped as udp_send_failed', async () => {
  // 360 segments are more than the send queue holds (4 × BATCH): it must be sent and refilled, not overflow.
  const udpFd = openUdp({ addr: LOOPBACK, port: 0, reusePort: false });
  const peer = createSocket('udp4');
  await new Promise<void>((res) => peer.bind(0, '127.0.0.1', res));
  let received = 0;
  peer.on('message', () => { received++; });
  let lane: ReturnType<typeof makeLane> | null = null;
  try {
    const writer = RouteTableWriter.create({ maxRoutes: 4, maxPeers: MAX_PEERS });
    writer.setLocalSubnet(LOCAL_NET, 24);
    writer.upsertPeer('peer', { addr: LOOPBACK, port: peer.address().port, subnet: PEER_NET, prefixLen: 24 });
    await writer.commit();
    const pathMtu = 1472;
    const init: WorkerInit = {
      index: 0, tunFd: 1_000_000, udpFd, wakeFd: -1, control: createControlBlock().buffer as SharedArrayBuffer, routes: writer.buffer,
      stats: createStats(1, MAX_PEERS).buffer, maxPeers: MAX_PEERS, workers: 1, pathMtu,
      offloads: { vnet: true, gso: false, gro: false, merge: 0 }, backend: { kind: 'udp' }, keepWarmMs: 0,
    };
    const slots = allocSlots(init);
    lane = makeLane(init, slots);
    const stats = new Float64Array(init.stats);
    const reader = new RouteTableReader(writer.buffer, 0);
    lane.use(reader, stats, new Int32Array(init.control), false);
    for (let i = 0; i < 8; i++) {
      slots.tunLens[i] = writeTsoRead(slots.slab, slots.tunOffs[i]!, POD_A, POD_B, pathMtu, 45, 1000 + i * 45 * (pathMtu - 40));
    }
    assert.equal(lane.step(8), false);
    const dropped = Array.from(stats.subarray(STAT.DROPS, STAT.DROPS + 32)).reduce((a, b) => a + b, 0);
    assert.equal(stats[STAT.UDP_TX_PKTS], 360, `datagrams sent; drops ${dropped}`);
    assert.equal(dropped, 0);
    for (let i = 0; i < 100 && received === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(received > 0, 'the peer got datagrams');
    reader.release();
  } finally {
    if (lane !== null) native.ioUnbind(lane.io);
    peer.close();
    native.close(udpFd);
  }
});

test('a GSO send refused with EIO: its segments are sent one by one, counted, and the worker sends without GSO from then on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-lane-eio-'));
  try {
    const so = buildEioPreload(dir);
    const child = fileURLToPath(new URL('./child-lane-eio.js', import.meta.url));
    const out = execFileSync(process.execPath, [child], { env: { ...process.env, LD_PRELOAD: so }, encoding: 'utf8', timeout: 15_000 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { turns: { fallbacks: number; sent: number }[]; drops: number };
    // Turn 1: one GSO run refused, its 45 datagrams resent. Turn 2: no GSO run, so no EIO: 45 more.
    assert.deepEqual(r, { turns: [{ fallbacks: 1, sent: 45 }, { fallbacks: 1, sent: 90 }], drops: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
