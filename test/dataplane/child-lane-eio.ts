/**
 * Run with LD_PRELOAD=eio-preload.so (lane-bytes.test.ts): a lane with TUN
 * offload and UDP GSO sends two super-packets of 45 segments, one turn
 * each, to a loopback socket. The first GSO send is refused (EIO); prints
 * the counters as one JSON line.
 */
import { allocSlots, makeLane, type WorkerInit } from '../../src/dataplane/lane.js';
import { createControlBlock, createStats, STAT } from '../../src/dataplane/layout.js';
import { openUdp } from '../../src/conn/udp.js';
import { native } from '../../src/native/index.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { writeTsoRead } from './tso-read.js';

const LOOPBACK = 0x7f000001;
const POD_A = 0x0af40102;
const POD_B = 0x0af40202;
const pathMtu = 1472;

const udpFd = openUdp({ addr: LOOPBACK, port: 0, reusePort: false });
const sink = openUdp({ addr: LOOPBACK, port: 0, reusePort: false, rcvBuf: 8 << 20 });
const writer = RouteTableWriter.create({ maxRoutes: 4, maxPeers: 4 });
writer.setLocalSubnet(0x0af40100, 24);
writer.upsertPeer('peer', { addr: LOOPBACK, port: native.udpLocalPort(sink), subnet: 0x0af40200, prefixLen: 24 });
await writer.commit();
const init: WorkerInit = {
  index: 0, tunFd: 1_000_000, udpFd, wakeFd: -1, control: createControlBlock().buffer as SharedArrayBuffer, routes: writer.buffer,
  stats: createStats(1, 4).buffer, maxPeers: 4, workers: 1, pathMtu,
  offloads: { vnet: true, gso: true, gro: false, merge: 0 }, backend: { kind: 'udp' }, keepWarmMs: 0,
};
const slots = allocSlots(init);
const lane = makeLane(init, slots);
const stats = new Float64Array(init.stats);
const reader = new RouteTableReader(writer.buffer, 0);
lane.use(reader, stats, new Int32Array(init.control), false);
const turns: { fallbacks: number; sent: number }[] = [];
for (let turn = 0; turn < 2; turn++) {
  slots.tunLens[0] = writeTsoRead(slots.slab, slots.tunOffs[0]!, POD_A, POD_B, pathMtu, 45, 1 + turn * 45 * (pathMtu - 40));
  lane.step(1);
  turns.push({ fallbacks: stats[STAT.GSO_FALLBACKS]!, sent: stats[STAT.UDP_TX_PKTS]! });
}
const drops = Array.from(stats.subarray(STAT.DROPS, STAT.DROPS + 32)).reduce((a, b) => a + b, 0);
native.ioUnbind(lane.io);
reader.release();
native.close(udpFd);
native.close(sink);
process.stdout.write(`${JSON.stringify({ turns, drops })}\n`);
