/**
 * Worker entry: one long-lived thread per TUN queue, with its own UDP
 * socket. The loop is synchronous — each turn one ioWait (poll with a
 * timeout, then the reads of both sides) and one Lane.step (lane.ts) for
 * the batches — so it never yields to the event loop; the control plane
 * talks to it only through shared memory (control block, route table,
 * counters), read once per turn. Before its first turn the worker warms
 * V8's optimizing compiler up on synthetic packets (warmup.ts) and then
 * tells the supervisor it is running.
 *
 * Two shapes of the same path, chosen at start-up by the offload probes:
 * - plain: one IP packet per TUN read/write and per datagram, batched
 *   through readv-like native calls, sendmmsg and recvmmsg;
 * - offload: the TUN hands over 64 KB TCP/UDP super-packets (IFF_VNET_HDR,
 *   TUNSETOFFLOAD) that the addon splits into MTU-sized packets laid back
 *   to back, sent as UDP_SEGMENT runs; received datagrams arrive as UDP_GRO
 *   runs and are merged back into super-packets before the TUN write.
 * The wire is the same in both: one inner IP packet per UDP datagram.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../native/index.js';
import { RouteTableReader } from '../route-table/index.js';
import { FLANNEL_UDP_PORT } from '../wire/constants.js';
import { allocSlots, makeLane, type WorkerInit } from './lane.js';
import { WARM_SETTLE_MS, WARM_SETTLE_ROUNDS, warmRoutes, warmUp, type WarmTarget } from './warmup.js';
import { POLL_TIMEOUT_MS } from './layout.js';

async function run(init: WorkerInit): Promise<void> {
  const slots = allocSlots(init);
  const be = init.backend;
  const port = be.kind === 'udp' ? FLANNEL_UDP_PORT : be.port;
  const lane = makeLane(init, slots);

  // JIT warm-up (see warmup.ts): the lane runs dry over a synthetic peer,
  // with scratch counters and control block, before it is pointed at the
  // real ones.
  const warm = await warmRoutes(init.maxPeers, port);
  lane.use(warm.reader, new Float64Array(new SharedArrayBuffer(init.stats.byteLength)),
    new Int32Array(new SharedArrayBuffer(init.control.byteLength)), true);
  const target: WarmTarget = {
    ...slots, vnet: init.offloads.vnet, gro: init.offloads.gro, pathMtu: init.pathMtu, port,
    vni: be.kind === 'vxlan' ? be.vni : -1, localMac: be.kind === 'vxlan' ? be.mac : [], step: lane.step,
  };
  warmUp(target);
  await new Promise((resolve) => setTimeout(resolve, WARM_SETTLE_MS));
  warmUp(target, WARM_SETTLE_ROUNDS);
  warm.reader.release();

  const rt = new RouteTableReader(init.routes, init.index);
  lane.use(rt, new Float64Array(init.stats), new Int32Array(init.control), false);
  // One native call waits and reads both sides; one call handles the turn.
  const { ioWait } = native;
  const { step, io } = lane;
  parentPort?.postMessage({ type: 'running' });
  while (!step(ioWait(io, POLL_TIMEOUT_MS)));
  rt.release();
}

await run(workerData as WorkerInit);
