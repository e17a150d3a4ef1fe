import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocSlots, makeLane, type Lane, type WorkerBackend, type WorkerInit, type WorkerOffloads } from '../../src/dataplane/lane.js';
import { makeTick, warmRoutes, warmUp, type WarmTarget } from '../../src/dataplane/warmup.js';
import { createControlBlock, createStats, CTL, PEER, STAT } from '../../src/dataplane/layout.js';
import { DropReason, DROP_REASON_NAMES } from '../../src/wire/drop-reason.js';
import { MERGE_TCP } from '../../src/offload/vnet.js';
import { RouteTableWriter, type RouteTableReader } from '../../src/route-table/index.js';
import { FLANNEL_UDP_PORT } from '../../src/wire/constants.js';
import { ICMP_BURST } from '../../src/encap/ipv4-checks.js';

// No such descriptor: any read, write or send the dry lane attempted would
// throw EBADF, so finishing at all shows it made no system call.
const NO_FD = 999_999;
const ROUNDS = 20;
const MAX_PEERS = 8;

const PLAIN: WorkerOffloads = { vnet: false, gso: false, gro: false, merge: 0 };
const OFFLOAD: WorkerOffloads = { vnet: true, gso: true, gro: true, merge: MERGE_TCP };
const UDP: WorkerBackend = { kind: 'udp' };
const VXLAN: WorkerBackend = {
  kind: 'vxlan', vni: 1, mac: [0x02, 0x42, 0x0a, 0x00, 0x00, 0x01], port: 8472, gbp: false,
};

function initFor(backend: WorkerBackend, offloads: WorkerOffloads): WorkerInit {
  return {
    index: 0, tunFd: NO_FD, udpFd: NO_FD, wakeFd: -1, control: createControlBlock().buffer as SharedArrayBuffer,
    routes: RouteTableWriter.create({ maxRoutes: 4, maxPeers: MAX_PEERS }).buffer,
    stats: createStats(1, MAX_PEERS).buffer, maxPeers: MAX_PEERS, workers: 1, pathMtu: 1472, offloads, backend,
    keepWarmMs: 0,
  };
}

const CASES = [
  ['udp, plain', UDP, PLAIN], ['udp, offloads', UDP, OFFLOAD],
  ['vxlan, plain', VXLAN, PLAIN], ['vxlan, offloads', VXLAN, OFFLOAD],
] as const;

/** A lane on descriptors that do not exist, the synthetic peer's route table and scratch counters. */
async function dryLane(backend: WorkerBackend, offloads: WorkerOffloads): Promise<{
  init: WorkerInit; lane: Lane; target: WarmTarget; warm: { reader: RouteTableReader }; scratch: Float64Array;
}> {
  const init = initFor(backend, offloads);
  const slots = allocSlots(init);
  const lane = makeLane(init, slots);
  const port = backend.kind === 'udp' ? FLANNEL_UDP_PORT : backend.port;
  const warm = await warmRoutes(MAX_PEERS, port);
  const scratch = new Float64Array(init.stats.byteLength / 8);
  const target: WarmTarget = {
    ...slots, vnet: offloads.vnet, gro: offloads.gro, pathMtu: init.pathMtu, port,
    vni: backend.kind === 'vxlan' ? backend.vni : -1, localMac: backend.kind === 'vxlan' ? backend.mac : [],
    step: lane.step,
  };
  return { init, lane, target, warm, scratch };
}

for (const [name, backend, offloads] of CASES) {
  test(`warm-up (${name}): every synthetic packet takes the forwarding path, and nothing is read or written`, async () => {
    const { init, lane, target, warm, scratch } = await dryLane(backend, offloads);
    const ctl = createControlBlock();
    lane.use(warm.reader, scratch, ctl, true);
    warmUp(target, ROUNDS);
    warm.reader.release();

    const drops = (r: number): number => scratch[STAT.DROPS + r]!;
    const peer = createStats(1, MAX_PEERS).layout.peerBase(0);
    // Egress per round: a ping and a TCP segment to the peer, a segment
    // without a route, a ping with TTL 1 (a routed hop for flannel udp, not
    // for VXLAN, which forwards it); with offloads also a TSO super-packet
    // of 16 segments.
    const hop = backend.kind === 'udp';
    const tunReads = offloads.vnet ? 5 : 4;
    const toPeer = (hop ? 2 : 3) + (offloads.vnet ? 16 : 0);
    assert.equal(scratch[STAT.TUN_RX_PKTS], ROUNDS * tunReads);
    assert.equal(scratch[peer + PEER.TX_PKTS], ROUNDS * toPeer, 'datagrams queued to the peer');
    // Dry: the send was offered nothing, so every queued datagram counts as not sent.
    assert.equal(scratch[STAT.UDP_TX_PKTS], 0);
    assert.equal(drops(DropReason.UDP_SEND_FAILED), ROUNDS * toPeer);
    assert.equal(drops(DropReason.NO_ROUTE), ROUNDS);
    assert.equal(drops(DropReason.TTL_EXCEEDED), hop ? ROUNDS : 0);
    // The same pod asks every round: the rate limit lets a burst through and holds back the rest.
    const types = hop ? 2 : 1;
    assert.equal(scratch[STAT.ICMP_SENT], types * Math.min(ROUNDS, ICMP_BURST), 'net-unreachable (and time-exceeded) built');
    assert.equal(scratch[STAT.ICMP_RATE_LIMITED], types * Math.max(0, ROUNDS - ICMP_BURST), 'the rest held back');
    // Ingress per round: a ping reply and 8 TCP segments, plus a GRO run of 8.
    const inbound = 1 + 8 + (offloads.gro ? 8 : 0);
    assert.equal(scratch[STAT.UDP_RX_PKTS], ROUNDS * inbound);
    assert.equal(scratch[peer + PEER.RX_PKTS], ROUNDS * inbound, 'every datagram accepted from the peer');
    assert.equal(scratch[STAT.TUN_TX_PKTS], ROUNDS * inbound);
    // TUN writes (merged or not, and the ICMP errors) were offered nothing either.
    assert.ok(drops(DropReason.TUN_WRITE_FAILED) > 0);
    const expected = new Set<number>([DropReason.UDP_SEND_FAILED, DropReason.NO_ROUTE, DropReason.TTL_EXCEEDED,
      DropReason.TUN_WRITE_FAILED]);
    for (let r = 1; r < DROP_REASON_NAMES.length; r++) {
      if (!expected.has(r)) assert.equal(drops(r), 0, `no ${DROP_REASON_NAMES[r]} drops`);
    }
    // The real counters were never touched; every turn was counted (the heartbeat).
    assert.ok(new Float64Array(init.stats).every((v) => v === 0));
    assert.equal(scratch[STAT.HEARTBEAT], 2 * ROUNDS);
    // And the turn obeys the control block it was given.
    assert.equal(lane.step(0), false);
    ctl[CTL.STOP] = 1;
    assert.equal(lane.step(0), true);
  });
}

for (const [name, backend, offloads] of CASES) {
  test(`keep-warm tick (${name}): a lone ping and its reply forwarded dry on the scratch side, the real side kept`, async () => {
    const { init, lane, target, warm, scratch } = await dryLane(backend, offloads);
    lane.setDrySide(warm.reader, scratch, createControlBlock());
    // The side use() gave: a second copy of the synthetic peer, its own
    // counters, and a control block that says stop. Dry as well, since the
    // descriptors do not exist.
    const real = await warmRoutes(MAX_PEERS, target.port);
    const realStats = new Float64Array(init.stats.byteLength / 8);
    const ctl = createControlBlock();
    ctl[CTL.STOP] = 1;
    lane.use(real.reader, realStats, ctl, true);
    const tick = makeTick({ ...target, dryStep: lane.dryStep });
    const TICKS = 5;
    for (let i = 0; i < TICKS; i++) tick();
    const peer = createStats(1, MAX_PEERS).layout.peerBase(0);
    assert.equal(scratch[STAT.HEARTBEAT], 2 * TICKS, 'two dry turns per tick');
    assert.equal(scratch[STAT.TUN_RX_PKTS], TICKS);
    assert.equal(scratch[peer + PEER.TX_PKTS], TICKS, 'the ping was routed to the peer');
    assert.equal(scratch[STAT.UDP_TX_PKTS], 0, 'and offered to no send');
    assert.equal(scratch[STAT.UDP_RX_PKTS], TICKS);
    assert.equal(scratch[peer + PEER.RX_PKTS], TICKS, 'the reply was accepted from the peer');
    assert.equal(scratch[STAT.TUN_TX_PKTS], TICKS);
    const expected = new Set<number>([DropReason.UDP_SEND_FAILED, DropReason.TUN_WRITE_FAILED]);
    for (let r = 1; r < DROP_REASON_NAMES.length; r++) {
      if (!expected.has(r)) assert.equal(scratch[STAT.DROPS + r], 0, `no ${DROP_REASON_NAMES[r]} drops`);
    }
    // After the ticks the lane is back on the side use() gave, and its
    // control block is obeyed.
    // Only the keep-warm's own counter moved on the real side.
    assert.equal(realStats[STAT.KEEP_WARM_TURNS], 2 * TICKS);
    realStats[STAT.KEEP_WARM_TURNS] = 0;
    assert.ok(realStats.every((v) => v === 0));
    assert.equal(lane.step(0), true);
    assert.equal(realStats[STAT.HEARTBEAT], 1);
    warm.reader.release();
    real.reader.release();
  });
}

test('keep-warm tick: dryStep without setDrySide is refused', () => {
  const init = initFor(UDP, PLAIN);
  const lane = makeLane(init, allocSlots(init));
  assert.throws(() => lane.dryStep(0), /dryStep before setDrySide/);
});
