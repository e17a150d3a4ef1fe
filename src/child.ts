/**
 * The one bounded child-process run under src: spawn argv (argv[0] looked
 * up in PATH), write `input` to its stdin when given, collect stdout and
 * stderr up to a cap, and kill it when it overruns its time. iproute2
 * (netlink), the ip-masq tools (control) and the testbed's commands all go
 * through it; each maps a spawn failure or a timeout to its own error.
 * Control plane and tests only.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface BoundedOptions {
  timeoutMs: number;
  /** Written to stdin, which is then closed; absent = stdin ignored. */
  input?: string | undefined;
  /** Characters kept of each of stdout and stderr (default 16 Mi). */
  outputCap?: number;
  /** Run in its own process group (see `kill`). */
  detached?: boolean;
  /** How to kill on timeout (default SIGKILL to the child). */
  kill?: (child: ChildProcess) => void;
  /** Called with gone = false once the child is spawned, and gone = true once it has exited or failed to start. */
  track?: (child: ChildProcess, gone: boolean) => void;
}

export interface BoundedResult {
  /** The exit code; 128 when a signal ended it, 1 when neither is known. */
  code: number;
  stdout: string;
  stderr: string;
  /** It overran timeoutMs and was killed. */
  timedOut: boolean;
}

const DEFAULT_OUTPUT_CAP = 16 * 1024 * 1024;

/** Resolves whatever the exit code (timedOut tells a kill); rejects when argv cannot be started. */
export function runBounded(argv: readonly string[], opts: BoundedOptions): Promise<BoundedResult> {
  const cap = opts.outputCap ?? DEFAULT_OUTPUT_CAP;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: opts.detached ?? false,
    });
    opts.track?.(child, false);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < cap) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < cap) stderr += d;
    });
    if (opts.input !== undefined && child.stdin !== null) {
      // A command that exits without reading closes its stdin; that write
      // error is not the failure to report.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
    const timer = setTimeout(() => {
      timedOut = true;
      if (opts.kill !== undefined) opts.kill(child);
      else child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      opts.track?.(child, true);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.track?.(child, true);
      resolve({ code: code ?? (signal !== null ? 128 : 1), stdout, stderr, timedOut });
    });
  });
}
