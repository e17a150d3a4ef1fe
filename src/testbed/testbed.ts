/**
 * Network-namespace testbed: hosts and pods as `ip netns` namespaces, with
 * every namespace and process it creates tracked so that one `cleanup()`
 * (also on Ctrl-C, SIGTERM and uncaught errors) leaves the machine as it
 * was. Shared by `weft demo`, the integration tests and the e2e bench.
 *
 * Every command runs under a timeout: a hung `ip` or `iperf3` must never
 * hang a test run or a bench on a shared machine.
 */
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, openSync, closeSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { runBounded } from '../child.js';
import { WeftError } from '../errors.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Default 10 000 ms. On expiry the process is killed and the call rejects. */
  timeoutMs?: number;
  /** Written to the command's stdin, then stdin is closed. */
  input?: string;
}

export interface SpawnOptions {
  /** stdout and stderr appended to this file; otherwise discarded unless `pipe`. */
  logFile?: string;
  /** Keep stdout/stderr as pipes (the caller reads them). */
  pipe?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ToolSpec {
  bin: string;
  debPackage: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Time between SIGTERM and SIGKILL in cleanup. */
const TERM_GRACE_MS = 2_000;
/** Linux IFNAMSIZ is 16 including the NUL. */
const IFNAME_MAX = 15;
const PREFIX_RE = /^[A-Za-z0-9]{1,12}$/;
const SHORT_RE = /^[A-Za-z0-9_.]{1,40}$/;
const OUTPUT_CAP = 32 * 1024 * 1024;
const ROUTE_VERBS = new Set(['add', 'replace', 'del', 'delete', 'append', 'change', 'show', 'get', 'flush']);

/** Directories searched for tools besides $PATH (sudo and cron strip sbin). */
const EXTRA_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'];

export function findTool(bin: string): string | null {
  if (bin.includes('/')) return isExecutable(bin) ? bin : null;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_PATH];
  for (const d of dirs) {
    const p = join(d, bin);
    if (isExecutable(p)) return p;
  }
  return null;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws naming every missing tool and the Debian package that provides it.
 * Installs nothing: what gets installed on a machine is the user's call.
 */
export function ensureTools(tools: readonly ToolSpec[]): void {
  const missing = tools.filter((t) => findTool(t.bin) === null);
  if (missing.length === 0) return;
  const names = missing.map((t) => `${t.bin} (Debian package ${t.debPackage})`).join(', ');
  const pkgs = [...new Set(missing.map((t) => t.debPackage))].join(' ');
  throw new WeftError('TOOL_MISSING', `missing tool: ${names}; install with: apt-get install ${pkgs}`);
}

function describe(ns: string | null, argv: readonly string[]): string {
  return (ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv]).join(' ');
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  // Children are spawned detached (own process group) so a daemon's own
  // children die with it; fall back to the pid when the group is gone.
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      process.kill(child.pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child) || child.pid === undefined) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Names of all namespaces (`ip netns list` prints "name (id: N)" or "name"). */
function listNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5_000 });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Kills every process still inside `ns`, then deletes it. Synchronous and bounded. */
function destroyNamespaceSync(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
  if (pids.status === 0) {
    for (const p of pids.stdout.split(/\s+/)) {
      const pid = Number(p);
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
  spawnSync('ip', ['netns', 'del', ns], { timeout: 5_000, stdio: 'ignore' });
}

export class Testbed {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs = new Set<ChildProcess>();
  private cleaning: Promise<void> | null = null;
  /** Set once a signal or fatal error started the final cleanup: nothing new may start. */
  private stopping = false;
  private signalHandlersInstalled = false;
  private removeSignalHandlers: (() => void) | null = null;

  /** `prefix`: 1–12 letters/digits, e.g. `wb${process.pid % 1000}`. */
  constructor(prefix: string) {
    if (!PREFIX_RE.test(prefix)) {
      throw new WeftError('TESTBED_BAD_NAME', `testbed prefix "${prefix}" must be 1-12 letters or digits`);
    }
    this.prefix = prefix;
  }

  /** Full namespace name for a short name: `<prefix>-<short>`. */
  nsName(short: string): string {
    return `${this.prefix}-${short}`;
  }

  /** Namespaces created and not yet removed, in creation order. */
  get namespaceNames(): readonly string[] {
    return this.namespaces;
  }

  /** Tracked processes that have not exited yet. */
  get liveProcesses(): ChildProcess[] {
    return [...this.procs].filter((c) => !exited(c));
  }

  /**
   * Runs argv in `ns` (null = the current namespace). Resolves with the exit
   * code and output whatever the code; rejects when the command cannot be
   * started or runs past the timeout (the process is killed first).
   */
  exec(ns: string | null, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const full = ns === null ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
    const cmd = describe(ns, argv);
    if (this.stopping) return Promise.reject(stoppedError(cmd));
    // Own process group, tracked until it exits, so cleanup() can kill it and what it started.
    return runBounded(full, {
      timeoutMs, input: opts.input, outputCap: OUTPUT_CAP, detached: true,
      kill: (child) => killGroup(child, 'SIGKILL'),
      track: (child, gone) => (gone ? this.procs.delete(child) : this.procs.add(child)),
    }).then((r) => {
      if (r.timedOut) throw new WeftError('TESTBED_TIMEOUT', `timed out after ${timeoutMs} ms (killed): ${cmd}`);
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    }, (err: Error) => {
      throw new WeftError('TESTBED_EXEC', `cannot run ${cmd}: ${err.message}`, { cause: err });
    });
  }

  /** Like exec, but a non-zero exit rejects with the command and its stderr. */
  async run(ns: string | null, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(ns, argv, opts);
    if (r.code !== 0) {
      const msg = (r.stderr.trim() || r.stdout.trim()).slice(0, 2000);
      throw new WeftError('TESTBED_COMMAND_FAILED', `exit ${r.code}: ${describe(ns, argv)}${msg ? `: ${msg}` : ''}`);
    }
    return r;
  }

  /**
   * Starts a long-running process in `ns`, tracked until cleanup(). It runs
   * in its own process group; cleanup sends SIGTERM, then SIGKILL after 2 s.
   * `ip netns exec` execs the command, so `pid` is the command's own pid.
   */
  spawn(ns: string | null, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const full = ns === null ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
    if (this.stopping) throw stoppedError(describe(ns, argv));
    let fd: number | null = null;
    if (opts.logFile !== undefined) fd = openSync(opts.logFile, 'a');
    const out = fd !== null ? fd : opts.pipe === true ? 'pipe' : 'ignore';
    try {
      const child = spawnChild(full[0] as string, full.slice(1), {
        stdio: ['ignore', out, out],
        detached: true,
        env: opts.env ?? process.env,
      });
      // An 'error' event without a listener would crash the process; the
      // caller sees the failure through exitCode / its own listener.
      child.on('error', () => {});
      this.procs.add(child);
      return child;
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }

  /** Creates `<prefix>-<short>` with lo up; returns the full name. */
  async addNs(short: string): Promise<string> {
    if (!SHORT_RE.test(short)) {
      throw new WeftError('TESTBED_BAD_NAME', `namespace short name "${short}" must be 1-40 of [A-Za-z0-9_.]`);
    }
    const ns = this.nsName(short);
    if (this.namespaces.includes(ns)) throw new WeftError('TESTBED_BAD_NAME', `namespace ${ns} already created by this testbed`);
    await this.run(null, ['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.run(null, ['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * A veth pair with one end in each namespace, both ends up. The pair is
   * created directly inside the namespaces, so the root namespace never
   * sees the names and parallel testbeds cannot collide.
   */
  async veth(nsA: string, ifA: string, nsB: string, ifB: string, mtu = 1500): Promise<void> {
    checkIfName(ifA);
    checkIfName(ifB);
    const m = String(mtu);
    await this.run(null, ['ip', 'link', 'add', 'name', ifA, 'netns', nsA, 'mtu', m, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB, 'mtu', m]);
    await this.up(nsA, ifA);
    await this.up(nsB, ifB);
  }

  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    await this.run(null, ['ip', '-n', ns, 'addr', 'add', cidr, 'dev', ifname]);
  }

  async up(ns: string, ifname: string): Promise<void> {
    await this.run(null, ['ip', '-n', ns, 'link', 'set', ifname, 'up']);
  }

  /**
   * `ip -n ns route <args>`. When args[0] is not a verb (add, replace, del,
   * …) it is an `add`: route(ns, ['10.244.2.0/24', 'via', '192.168.100.2']).
   */
  async route(ns: string, args: readonly string[]): Promise<void> {
    const withVerb = args.length > 0 && ROUTE_VERBS.has(args[0] as string) ? args : ['add', ...args];
    await this.run(null, ['ip', '-n', ns, 'route', ...withVerb]);
  }

  /**
   * Writes a sysctl inside `ns` (/proc/sys/net is per namespace of the
   * reader). `key` is dotted ("net.ipv4.ip_forward") or a path with '/'
   * when an interface name contains a dot ("net/ipv4/conf/flannel.1/rp_filter").
   */
  async sysctl(ns: string, key: string, value: string | number): Promise<void> {
    const path = '/proc/sys/' + (key.includes('/') ? key : key.replaceAll('.', '/'));
    await this.run(ns, ['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', String(value), path]);
  }

  /**
   * Kills tracked processes (SIGTERM, SIGKILL after 2 s), then any process
   * still inside our namespaces, then deletes the namespaces (which removes
   * their veths). Idempotent; concurrent calls share one run.
   */
  cleanup(): Promise<void> {
    if (this.cleaning !== null) return this.cleaning;
    this.cleaning = this.doCleanup().finally(() => {
      this.cleaning = null;
    });
    return this.cleaning;
  }

  private async doCleanup(): Promise<void> {
    const live = this.liveProcesses;
    for (const c of live) killGroup(c, 'SIGTERM');
    const done = await Promise.all(live.map((c) => waitExit(c, TERM_GRACE_MS)));
    live.forEach((c, i) => {
      if (!done[i]) killGroup(c, 'SIGKILL');
    });
    await Promise.all(live.map((c, i) => (done[i] ? Promise.resolve(true) : waitExit(c, 1_000))));
    for (const c of [...this.procs]) if (exited(c)) this.procs.delete(c);
    while (this.namespaces.length > 0) {
      const ns = this.namespaces.pop() as string;
      destroyNamespaceSync(ns);
    }
  }

  /** For process 'exit' handlers, where nothing asynchronous can run. */
  cleanupSync(): void {
    for (const c of this.liveProcesses) killGroup(c, 'SIGKILL');
    this.procs.clear();
    while (this.namespaces.length > 0) destroyNamespaceSync(this.namespaces.pop() as string);
  }

  /**
   * On SIGINT (exit 130), SIGTERM (143), SIGHUP (129), an uncaught
   * exception or unhandled rejection (1): clean up, then exit. On a normal
   * exit anything left is removed synchronously. Returns an uninstaller.
   */
  installSignalCleanup(): () => void {
    if (this.signalHandlersInstalled && this.removeSignalHandlers !== null) return this.removeSignalHandlers;
    this.signalHandlersInstalled = true;
    let exiting = false;
    const finish = (code: number): void => {
      if (exiting) return;
      exiting = true;
      // The interrupted code keeps running until exit; whatever it tries to
      // start next would outlive the cleanup.
      this.stopping = true;
      const hardStop = setTimeout(() => {
        this.cleanupSync();
        process.exit(code);
      }, 10_000);
      hardStop.unref();
      this.cleanup().then(
        () => process.exit(code),
        () => {
          this.cleanupSync();
          process.exit(code);
        },
      );
    };
    const onSigint = (): void => {
      process.stderr.write('\ninterrupted; cleaning up the testbed\n');
      finish(130);
    };
    const onSigterm = (): void => finish(143);
    const onSighup = (): void => finish(129);
    const onError = (err: unknown): void => {
      process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      finish(1);
    };
    const onExit = (): void => {
      if (this.namespaces.length > 0 || this.liveProcesses.length > 0) this.cleanupSync();
    };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    process.on('SIGHUP', onSighup);
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    process.on('exit', onExit);
    this.removeSignalHandlers = () => {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
      process.off('SIGHUP', onSighup);
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
      process.off('exit', onExit);
      this.signalHandlersInstalled = false;
      this.removeSignalHandlers = null;
    };
    return this.removeSignalHandlers;
  }

  /**
   * Removes namespaces named `<prefix>-*` left behind by a crashed run
   * (killing the processes still inside them). Returns the names removed.
   */
  static sweep(prefix: string): string[] {
    if (!PREFIX_RE.test(prefix)) {
      throw new WeftError('TESTBED_BAD_NAME', `sweep prefix "${prefix}" must be 1-12 letters or digits`);
    }
    const stale = listNamespaces().filter((n) => n.startsWith(`${prefix}-`));
    for (const ns of stale) destroyNamespaceSync(ns);
    return stale;
  }

  /**
   * For prefixes built as `<base><pid>`: removes the namespaces of runs
   * whose process is gone (a crash or SIGKILL skipped their cleanup).
   * A namespace whose pid is alive (even if reused) is left alone.
   */
  static sweepDead(base: string): string[] {
    if (!/^[A-Za-z]{1,4}$/.test(base)) {
      throw new WeftError('TESTBED_BAD_NAME', `sweepDead base "${base}" must be 1-4 letters`);
    }
    const re = new RegExp(`^${base}(\\d+)-`);
    const removed: string[] = [];
    for (const ns of listNamespaces()) {
      const m = re.exec(ns);
      if (m === null) continue;
      const pid = Number(m[1]);
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (alive) continue;
      destroyNamespaceSync(ns);
      removed.push(ns);
    }
    return removed;
  }

  static ensureTools(tools: readonly ToolSpec[]): void {
    ensureTools(tools);
  }

  static namespaceExists(ns: string): boolean {
    return listNamespaces().includes(ns);
  }
}

function stoppedError(cmd: string): WeftError {
  return new WeftError('TESTBED_STOPPED', `testbed is shutting down; not starting: ${cmd}`);
}

export function checkIfName(ifname: string): void {
  if (ifname.length === 0 || ifname.length > IFNAME_MAX || /[\s/]/.test(ifname)) {
    throw new WeftError('TESTBED_BAD_NAME', `interface name "${ifname}" must be 1-${IFNAME_MAX} characters without spaces or '/'`);
  }
}
