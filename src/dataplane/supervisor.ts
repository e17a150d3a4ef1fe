/**
 * Starts one long-lived worker per TUN queue and keeps them running: a
 * worker that dies is restarted (with backoff) on the same queue and
 * socket, while the other workers keep forwarding.
 */
import { Worker } from 'node:worker_threads';
import { CTL, STAT, WORKER_STRIDE } from './layout.js';
import type { WorkerBackend, WorkerInit, WorkerOffloads } from './worker.js';

export interface SupervisorOptions {
  readonly tunFds: readonly number[];
  readonly udpFds: readonly number[];
  readonly control: Int32Array;
  readonly routes: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly maxPeers: number;
  readonly pathMtu: number;
  readonly offloads: WorkerOffloads;
  readonly backend: WorkerBackend;
  /** Called when a worker's reader slot must be released (it died). */
  readonly onWorkerGone: (index: number) => void;
  readonly log: (msg: string) => void;
}

interface Slot {
  worker: Worker | null;
  restarts: number;
  backoffMs: number;
  startedAt: number;
  timer: NodeJS.Timeout | null;
}

const WORKER_URL = new URL('./worker.js', import.meta.url);
const MAX_BACKOFF_MS = 5000;

export class Supervisor {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readonly stats: Float64Array;

  constructor(private readonly opts: SupervisorOptions) {
    this.stats = new Float64Array(opts.stats);
  }

  get size(): number {
    return this.opts.tunFds.length;
  }

  start(): void {
    for (let i = 0; i < this.size; i++) {
      this.slots.push({ worker: null, restarts: 0, backoffMs: 100, startedAt: 0, timer: null });
      this.spawn(i);
    }
  }

  private spawn(i: number): void {
    const o = this.opts;
    const init: WorkerInit = {
      index: i,
      tunFd: o.tunFds[i]!,
      udpFd: o.udpFds[i]!,
      control: o.control.buffer as SharedArrayBuffer,
      routes: o.routes,
      stats: o.stats,
      maxPeers: o.maxPeers,
      workers: this.size,
      pathMtu: o.pathMtu,
      offloads: o.offloads,
      backend: o.backend,
    };
    const slot = this.slots[i]!;
    const w = new Worker(WORKER_URL, { workerData: init, name: `weft-worker-${i}` });
    slot.worker = w;
    slot.startedAt = Date.now();
    slot.timer = null;
    let reason = '';
    w.on('error', (err) => {
      reason = err instanceof Error ? err.message : String(err);
    });
    w.on('exit', (code) => {
      slot.worker = null;
      this.opts.onWorkerGone(i);
      if (this.stopping) return;
      // A worker that ran for a while gets a fresh backoff.
      if (Date.now() - slot.startedAt > 10_000) slot.backoffMs = 100;
      slot.restarts++;
      this.stats[i * WORKER_STRIDE + STAT.RESTARTS]++;
      this.opts.log(`worker ${i} exited (code ${code}${reason ? `: ${reason}` : ''}); restarting in ${slot.backoffMs} ms`);
      slot.timer = setTimeout(() => this.spawn(i), slot.backoffMs);
      slot.backoffMs = Math.min(slot.backoffMs * 2, MAX_BACKOFF_MS);
    });
  }

  /** Test hook: make worker i throw on its next batch. */
  crash(i: number): boolean {
    if (i < 0 || i >= this.size) return false;
    Atomics.store(this.opts.control, CTL.CRASH + i, 1);
    return true;
  }

  health(): { index: number; alive: boolean; restarts: number; heartbeatAgeMs: number | null }[] {
    const now = Date.now();
    return this.slots.map((s, i) => {
      const hb = this.stats[i * WORKER_STRIDE + STAT.HEARTBEAT]!;
      return { index: i, alive: s.worker !== null, restarts: s.restarts, heartbeatAgeMs: hb > 0 ? now - hb : null };
    });
  }

  /** Stops every worker; they leave their loops within one poll timeout. */
  async stop(): Promise<void> {
    this.stopping = true;
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
