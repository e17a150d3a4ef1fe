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
 * Keep-warm (--keep-warm, off by default; docs/configuration.md has its
 * figures): a packet after a pause of a few milliseconds finds the
 * worker's code and data evicted from the CPU caches. With it, for
 * KEEP_WARM_LINGER_MS after its last packet an idle worker wakes every
 * keepWarmMs and runs one dry turn of a lone ping and its reply (warmup.ts
 * makeTick): no system call, scratch counters. A worker with traffic never
 * ticks; one idle for longer than the linger sleeps POLL_TIMEOUT_MS at a
 * time as before.
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
import { makeTick, WARM_SETTLE_MS, WARM_SETTLE_ROUNDS, warmRoutes, warmUp, type WarmTarget } from './warmup.js';
import { KEEP_WARM_LINGER_MS, POLL_TIMEOUT_MS } from './layout.js';

async function run(init: WorkerInit): Promise<void> {
  const slots = allocSlots(init);
  const be = init.backend;
  const port = be.kind === 'udp' ? FLANNEL_UDP_PORT : be.port;
  const lane = makeLane(init, slots);

  // JIT warm-up (see warmup.ts): the lane runs dry over a synthetic peer,
  // with scratch counters and control block, before it is pointed at the
  // real ones.
  const warm = await warmRoutes(init.maxPeers, port);
  const scratchStats = new Float64Array(new SharedArrayBuffer(init.stats.byteLength));
  const scratchCtl = new Int32Array(new SharedArrayBuffer(init.control.byteLength));
  lane.use(warm.reader, scratchStats, scratchCtl, true);
  const target: WarmTarget = {
    ...slots, vnet: init.offloads.vnet, gro: init.offloads.gro, pathMtu: init.pathMtu, port,
    vni: be.kind === 'vxlan' ? be.vni : -1, localMac: be.kind === 'vxlan' ? be.mac : [], step: lane.step,
  };
  warmUp(target);
  await new Promise((resolve) => setTimeout(resolve, WARM_SETTLE_MS));
  warmUp(target, WARM_SETTLE_ROUNDS);
  // The keep-warm tick keeps the warm-up's side: its route table stays held.
  lane.setDrySide(warm.reader, scratchStats, scratchCtl);
  const tick = makeTick({ ...target, dryStep: lane.dryStep });

  const rt = new RouteTableReader(init.routes, init.index);
  lane.use(rt, new Float64Array(init.stats), new Int32Array(init.control), false);
  // One native call waits and reads both sides; one call handles the turn.
  const { ioWait } = native;
  const { step, io } = lane;
  const warmMs = init.keepWarmMs;
  const lingerTicks = warmMs > 0 ? Math.ceil(KEEP_WARM_LINGER_MS / warmMs) : 0;
  // Ticks left before the worker goes back to long sleeps.
  let linger = 0;
  parentPort?.postMessage({ type: 'running' });
  for (;;) {
    const got = ioWait(io, linger > 0 ? warmMs : POLL_TIMEOUT_MS);
    if (got !== 0) linger = lingerTicks;
    else if (linger > 0) {
      linger--;
      tick();
    }
    if (step(got)) break;
  }
  native.ioUnbind(io);
  rt.release();
  warm.reader.release();
}

await run(workerData as WorkerInit);
