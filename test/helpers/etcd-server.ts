/**
 * A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: one member,
 * a temporary data dir, client and peer URLs on 127.0.0.1 (or on an
 * address inside a test network namespace), nothing else. It can be
 * stopped and started again on the same data dir and ports, so tests can
 * simulate an outage.
 *
 * Readiness is taken from etcd's own log line ("ready to serve client
 * requests"), which works the same inside a namespace the test process
 * cannot reach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const LOG_CAP = 64 * 1024;

function underCi(): boolean {
  return process.env.CI === 'true' || process.env.CI === '1';
}

/**
 * For `describe(name, { skip: etcdSkip() }, …)` / `t.skip(etcdSkip())`:
 * false when etcd is installed; the reason otherwise — except under CI,
 * where a missing etcd is a broken setup and throws.
 */
export function etcdSkip(): string | false {
  if (existsSync(ETCD_BIN) && existsSync(ETCDCTL_BIN)) return false;
  const reason = `etcd is not installed (${ETCD_BIN}, ${ETCDCTL_BIN}): install the Debian package etcd-server (and etcd-client)`;
  if (underCi()) throw new Error(`${reason}; CI must run the etcd tests, a skip there is a failure`);
  return reason;
}

export interface EtcdServer {
  /** http://host:clientPort */
  endpoint: string;
  dataDir: string;
  host: string;
  clientPort: number;
  peerPort: number;
  /** Running right now. */
  readonly running: boolean;
  /** Recent etcd log output (for failure messages). */
  log(): string;
  /** SIGTERM, then SIGKILL after 3 s; keeps the data dir so start() can resume it. */
  halt(): Promise<void>;
  /** SIGKILL; keeps the data dir. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: etcd stays bound but answers nothing. */
  pause(): void;
  resume(): void;
  /** Starts etcd again on the same data dir and ports; resolves when ready. */
  start(): Promise<void>;
  /** halt() and remove the data dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Default: a free port on 127.0.0.1 (2379/2380 inside a namespace). */
  clientPort?: number;
  peerPort?: number;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

// Children that must not outlive a crashed test process.
const live = new Set<ChildProcess>();
let exitHook = false;
function track(c: ChildProcess): void {
  live.add(c);
  c.once('exit', () => live.delete(c));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const p of live) {
        try { p.kill('SIGKILL'); } catch { /* gone */ }
      }
    });
  }
}

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (exited(c)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    c.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const skip = etcdSkip();
  if (skip !== false) throw new Error(skip);
  const host = opts.host ?? '127.0.0.1';
  const inNs = opts.netns !== undefined;
  const clientPort = opts.clientPort ?? (inNs ? 2379 : await freePort());
  let peerPort = opts.peerPort ?? (inNs ? 2380 : await freePort());
  while (peerPort === clientPort) peerPort = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-etcd-'));
  const clientUrl = `http://${host}:${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const args = [
    '--name', 'default',
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `default=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--enable-v2=false',
  ];
  // Only PATH and HOME: an ETCD_* variable of the caller would change the flags.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dataDir };
  let child: ChildProcess | null = null;
  let logText = '';
  let removed = false;

  const launch = async (): Promise<void> => {
    if (removed) throw new Error('etcd test server: start() after stop()');
    const argv = inNs ? ['ip', 'netns', 'exec', opts.netns as string, ETCD_BIN, ...args] : [ETCD_BIN, ...args];
    const c = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    child = c;
    track(c);
    let ready = false;
    const onData = (d: Buffer): void => {
      logText += d.toString();
      if (logText.length > LOG_CAP) logText = logText.slice(-LOG_CAP);
      if (!ready && logText.includes('ready to serve client requests')) ready = true;
    };
    c.stdout?.on('data', onData);
    c.stderr?.on('data', onData);
    c.on('error', (e) => { logText += `\nspawn error: ${e.message}`; });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!ready) {
      if (exited(c) || Date.now() > deadline) {
        const why = exited(c) ? `exited (code ${c.exitCode}, signal ${c.signalCode})` : `was not ready within ${READY_TIMEOUT_MS} ms`;
        if (!exited(c)) { c.kill('SIGKILL'); await waitExit(c, 2000); }
        throw new Error(`etcd test server ${why}; its log:\n${logText.slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const halt = async (): Promise<void> => {
    const c = child;
    if (c === null || exited(c)) return;
    try { c.kill('SIGCONT'); } catch { /* not paused */ }
    c.kill('SIGTERM');
    if (!(await waitExit(c, STOP_GRACE_MS))) {
      c.kill('SIGKILL');
      await waitExit(c, 2000);
    }
  };

  const server: EtcdServer = {
    endpoint: clientUrl,
    dataDir,
    host,
    clientPort,
    peerPort,
    get running() { return child !== null && !exited(child); },
    log: () => logText,
    halt,
    async kill() {
      const c = child;
      if (c === null || exited(c)) return;
      c.kill('SIGKILL');
      await waitExit(c, 2000);
    },
    pause() { child?.kill('SIGSTOP'); },
    resume() { child?.kill('SIGCONT'); },
    start: launch,
    async stop() {
      await halt();
      if (!removed) {
        removed = true;
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
  try {
    await launch();
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** etcdctl (v3 API) against `endpoint`, optionally inside a namespace. */
export function etcdctl(endpoint: string, args: readonly string[], netns?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = netns !== undefined
    ? ['ip', 'netns', 'exec', netns, ETCDCTL_BIN, `--endpoints=${endpoint}`, ...args]
    : [ETCDCTL_BIN, `--endpoints=${endpoint}`, ...args];
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '3' },
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
    c.on('error', (e) => { clearTimeout(t); reject(e); });
    c.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? 1, stdout, stderr }); });
  });
}
