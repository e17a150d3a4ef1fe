/**
 * Starts one long-lived worker per TUN queue and keeps them running: a
 * worker that dies is restarted (with backoff) on the same queue and
 * socket, while the other workers keep forwarding.
 */
import { Worker } from 'node:worker_threads';
import { CTL, STAT, WORKER_STRIDE } from './layout.js';
import type { WorkerBackend, WorkerInit, WorkerOffloads } from './lane.js';
import type { Log } from '../log.js';
import { native } from '../native/index.js';

export interface SupervisorOptions {
  readonly tunFds: readonly number[];
  readonly udpFds: readonly number[];
  /** One eventfd per worker: wake() ends their idle waits. */
  readonly wakeFds: readonly number[];
  readonly control: Int32Array;
  readonly routes: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly maxPeers: number;
  readonly pathMtu: number;
  readonly offloads: WorkerOffloads;
  readonly backend: WorkerBackend;
  /** Keep-warm tick period in ms, 0 = off (worker.ts). */
  readonly keepWarmMs: number;
  /** Called when a worker's reader slot must be released (it died). */
  readonly onWorkerGone: (index: number) => void;
  /** When a worker last forwarded, carried over from the supervisor this one replaces; default: now. */
  readonly lastForwardingAt?: number;
  readonly log: Log;
}

interface Slot {
  worker: Worker | null;
  restarts: number;
  backoffMs: number;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  /** The worker's turn counter when last sampled, and when it last moved. */
  turns: number;
  movedAt: number;
  /** The worker has been in its forwarding loop (past its JIT warm-up) at least once. */
  running: boolean;
  /** The worker is in its forwarding loop now. */
  forwarding: boolean;
}

/** How often the turn counters are sampled for heartbeatAgeMs. */
const HEARTBEAT_SAMPLE_MS = 250;

const WORKER_URL = new URL('./worker.js', import.meta.url);
const MAX_BACKOFF_MS = 5000;

export class Supervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readonly stats: Float64Array;
  private sampler: NodeJS.Timeout | null = null;
  private onAllRunning: (() => void) | null = null;
  /** When the last worker to stop forwarding stopped (or the start, or the carried-over time). */
  private lastForwarding: number;

  constructor(private readonly opts: SupervisorOptions) {
    this.stats = new Float64Array(opts.stats);
    this.lastForwarding = opts.lastForwardingAt ?? Date.now();
  }

  get size(): number {
    return this.opts.tunFds.length;
  }

  start(): void {
    for (let i = 0; i < this.size; i++) {
      this.slots.push({
        worker: null, restarts: 0, backoffMs: 100, startedAt: 0, timer: null, turns: 0, movedAt: 0, running: false, forwarding: false,
      });
      this.spawn(i);
    }
    // Workers count their loop turns (a clock read per turn would cost a
    // packet's latency); the counters are sampled here instead.
    this.sampler = setInterval(() => this.sampleTurns(), HEARTBEAT_SAMPLE_MS);
    this.sampler.unref();
  }

  /**
   * Resolves once every worker has entered its forwarding loop, so the
   * daemon does not report ready while packets would wait for a warm-up;
   * false if that took longer than timeoutMs.
   */
  running(timeoutMs: number): Promise<boolean> {
    if (this.slots.every((s) => s.running)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.onAllRunning = null; resolve(false); }, timeoutMs);
      this.onAllRunning = () => { clearTimeout(t); resolve(true); };
    });
  }

  /** Workers in their forwarding loop now. */
  forwardingCount(): number {
    return this.slots.filter((s) => s.forwarding).length;
  }

  /** When a worker was last forwarding: now while one is. */
  lastForwardingAt(): number {
    return this.slots.some((s) => s.forwarding) ? Date.now() : this.lastForwarding;
  }

  private sampleTurns(): void {
    const now = Date.now();
    this.slots.forEach((s, i) => {
      const turns = this.stats[i * WORKER_STRIDE + STAT.HEARTBEAT]!;
      if (turns !== s.turns) {
        s.turns = turns;
        s.movedAt = now;
      }
    });
  }

  private spawn(i: number): void {
    const o = this.opts;
    const init: WorkerInit = {
      index: i,
      tunFd: o.tunFds[i]!,
      udpFd: o.udpFds[i]!,
      wakeFd: o.wakeFds[i]!,
      control: o.control.buffer as SharedArrayBuffer,
      routes: o.routes,
      stats: o.stats,
      maxPeers: o.maxPeers,
      workers: this.size,
      pathMtu: o.pathMtu,
      offloads: o.offloads,
      backend: o.backend,
      keepWarmMs: o.keepWarmMs,
    };
    const slot = this.slots[i]!;
    const w = new Worker(WORKER_URL, { workerData: init, name: `weft-worker-${i}` });
    slot.worker = w;
    w.on('message', (m: unknown) => {
      if ((m as { type?: unknown } | null)?.type !== 'running') return;
      slot.running = true;
      slot.forwarding = true;
      if (this.onAllRunning && this.slots.every((s) => s.running)) {
        const f = this.onAllRunning;
        this.onAllRunning = null;
        f();
      }
    });
    slot.startedAt = Date.now();
    slot.timer = null;
    let reason = '';
    w.on('error', (err) => {
      reason = err instanceof Error ? err.message : String(err);
    });
    w.on('exit', (code) => {
      slot.worker = null;
      if (slot.forwarding) this.lastForwarding = Date.now();
      slot.forwarding = false;
      this.opts.onWorkerGone(i);
      if (this.stopping) return;
      // A worker that ran for a while gets a fresh backoff.
      if (Date.now() - slot.startedAt > 10_000) slot.backoffMs = 100;
      slot.restarts++;
      this.stats[i * WORKER_STRIDE + STAT.RESTARTS]++;
      this.opts.log.error(`worker ${i} exited (code ${code}${reason ? `: ${reason}` : ''}); restarting in ${slot.backoffMs} ms`);
      slot.timer = setTimeout(() => this.spawn(i), slot.backoffMs);
      slot.backoffMs = Math.min(slot.backoffMs * 2, MAX_BACKOFF_MS);
    });
  }

  /** Ends every worker's idle wait, so each acks a new route table at once. */
  wake(): void {
    for (const fd of this.opts.wakeFds) native.eventfdSignal(fd);
  }

  /** Test hook: make worker i throw on its next batch. */
  crash(i: number): boolean {
    // Not a worker index (NaN would store into the control block's first word, STOP).
    if (!Number.isInteger(i) || i < 0 || i >= this.size) return false;
    Atomics.store(this.opts.control, CTL.CRASH + i, 1);
    return true;
  }

  /** heartbeatAgeMs: time since the worker's loop last turned (sampled every 250 ms); null before its first turn. */
  health(): { index: number; alive: boolean; restarts: number; heartbeatAgeMs: number | null }[] {
    this.sampleTurns();
    const now = Date.now();
    return this.slots.map((s, i) => (
      { index: i, alive: s.worker !== null, restarts: s.restarts, heartbeatAgeMs: s.turns > 0 ? now - s.movedAt : null }));
  }

  /** Stops every worker; they leave their loops within one poll timeout. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sampler) clearInterval(this.sampler);
    Atomics.store(this.opts.control, CTL.STOP, 1);
    const waits: Promise<unknown>[] = [];
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      const w = s.worker;
      if (w) {
        waits.push(new Promise<void>((resolve) => {
          const t = setTimeout(() => { void w.terminate(); }, 2000);
          w.once('exit', () => { clearTimeout(t); resolve(); });
        }));
      }
    }
    await Promise.all(waits);
  }
}
