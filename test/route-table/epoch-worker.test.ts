/**
 * The epoch protocol across real threads: a worker does lookups in a tight
 * loop, refresh() once per batch, while the main thread publishes 200
 * alternating tables. Each table is internally consistent (X: every route,
 * the local subnet and both peers' ports say "X"; Y likewise), so a batch
 * that sees anything of both tables proves a torn read.
 * This file is also the worker's script (isMainThread tells which).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { parseIpv4, prefixMask } from '../../src/wire/ipv4-addr.js';
import { Prng } from '../helpers/prng.js';

const ROLE = 'route-table-epoch-reader';
const READER_SLOT = 5;
const X = { slot: 0, net: parseIpv4('10.10.0.0'), port: 1111 };
const Y = { slot: 1, net: parseIpv4('10.20.0.0'), port: 2222 };
const BATCH = 256;
const PAUSE_MS = 1;
const WORKER_DEADLINE_MS = 15000;

interface WorkerReport {
  batches: number;
  torn: number;
  firstTear: string;
  epochsSeen: number;
  xBatches: number;
  yBatches: number;
}

function runReader(buffer: SharedArrayBuffer, stop: Int32Array): WorkerReport {
  const r = new RouteTableReader(buffer, READER_SLOT);
  // From here on commit() waits for this reader; tell the writer to start.
  parentPort?.postMessage('ready');
  const rng = new Prng(7);
  const addrs = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) addrs[i] = rng.u32();
  const rep: WorkerReport = { batches: 0, torn: 0, firstTear: '', epochsSeen: 0, xBatches: 0, yBatches: 0 };
  let lastEpoch = -1;
  const deadline = Date.now() + WORKER_DEADLINE_MS;
  while (Atomics.load(stop, 0) === 0 && Date.now() < deadline) {
    r.refresh();
    if (r.epoch !== lastEpoch) {
      rep.epochsSeen++;
      lastEpoch = r.epoch;
    }
    if (r.epoch === 0) continue; // the empty table before the first commit
    rep.batches++;
    const t = r.localNet === X.net ? X : Y;
    if (t === X) rep.xBatches++;
    else rep.yBatches++;
    let bad = r.localNet !== t.net || r.peerPort[0] !== t.port;
    for (let i = 0; i < BATCH && !bad; i++) {
      if (r.lookup(addrs[i] as number) !== t.slot) bad = true;
    }
    // Every other batch is a long one (as when a worker waits in the
    // kernel mid-batch), so a writer that did not wait for the ack would
    // be rewriting this copy while it is in use — and the second pass
    // would see it.
    if ((rep.batches & 1) === 1) Atomics.wait(stop, 0, 0, PAUSE_MS);
    for (let i = 0; i < BATCH && !bad; i++) {
      if (r.lookup(addrs[i] as number) !== t.slot) bad = true;
    }
    if (r.peerPort[0] !== t.port || r.peerPort[1] !== t.port || r.peerByAddr(parseIpv4('192.168.0.1')) !== 0) bad = true;
    if (bad) {
      if (rep.torn === 0) rep.firstTear = `epoch ${r.epoch}, localNet ${r.localNet}, port0 ${r.peerPort[0]}`;
      rep.torn++;
    }
  }
  r.release();
  return rep;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const d = workerData as { buffer: SharedArrayBuffer; stop: SharedArrayBuffer };
  parentPort?.postMessage(runReader(d.buffer, new Int32Array(d.stop)));
} else {
  test('a worker never sees a batch mixing two generations across 200 commits', { timeout: 30000 }, async () => {
    const w = RouteTableWriter.create({ maxRoutes: 4096, maxPeers: 64 });
    const rng = new Prng(42);
    const prefixes: [number, number][] = [[0, 0]];
    for (let i = 0; i < 1000; i++) {
      const len = 1 + rng.int(32);
      prefixes.push([(rng.u32() & prefixMask(len)) >>> 0, len]);
    }
    const stopBuf = new SharedArrayBuffer(4);
    const stop = new Int32Array(stopBuf);
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { role: ROLE, buffer: w.buffer, stop: stopBuf },
    });
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const report = new Promise<WorkerReport>((resolve, reject) => {
      worker.on('message', (m: WorkerReport | 'ready') => (m === 'ready' ? ready() : resolve(m)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`reader worker exited (${code}) before reporting`)));
    });
    try {
      const peer = (slot: number, port: number): number =>
        w.upsertPeer(`p${slot}`, { addr: parseIpv4(`192.168.0.${slot + 1}`), port, subnet: 0, prefixLen: 0 });
      assert.deepEqual([peer(0, 0), peer(1, 0)], [X.slot, Y.slot]);
      await Promise.race([isReady, report]);
      const started = Date.now();
      for (let i = 0; i < 200; i++) {
        // X, X, Y, Y, ...: epochs two apart (same copy) hold different
        // tables, so overwriting a copy in use would change what it says.
        const t = (i & 2) === 0 ? X : Y;
        const other = t === X ? Y : X;
        // Both peers' subnet is the /0; the one upserted last owns that route.
        peer(other.slot, t.port);
        peer(t.slot, t.port);
        w.setLocalSubnet(t.net, 16);
        for (const [a, l] of prefixes) w.addRoute(a, l, t.slot);
        await w.commit();
        assert.ok(Date.now() - started < 20000, 'commits took too long');
      }
      // Give the worker a moment on the last table, then stop it.
      await new Promise((resolve) => setTimeout(resolve, 20));
      Atomics.store(stop, 0, 1);
      const rep = await report;
      assert.equal(rep.torn, 0, `torn batches: ${rep.torn} of ${rep.batches}, first: ${rep.firstTear}`);
      assert.ok(rep.batches > 200, `worker ran only ${rep.batches} batches`);
      // The reader acks every epoch but the last before the next commit.
      assert.ok(rep.epochsSeen >= 199, `worker saw only ${rep.epochsSeen} epochs`);
      assert.ok(rep.xBatches > 0 && rep.yBatches > 0);
    } finally {
      Atomics.store(stop, 0, 1);
      await worker.terminate();
    }
  });
}
