/**
 * Cost of the tunnel daemons from /proc: CPU seconds (utime + stime of the
 * process and its live descendants, plus the reaped children's cutime +
 * cstime; threads are counted in their process), CPU nanoseconds of their
 * threads (schedstat, for spans too short for clock ticks) and peak RSS
 * (VmHWM).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2_000 }).trim()) || 100;
    } catch {
      clkTck = 100; // USER_HZ on every Linux architecture in practice
    }
  }
  return clkTck;
}

interface StatLine {
  ppid: number;
  ticks: number;
}

/** /proc/<pid>/stat after the "(comm)" field, which may itself contain spaces and parens. */
function readStat(pid: number): StatLine | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid = field 4, utime..cstime = fields 14..17.
  const f = (n: number): number => Number(rest[n - 3]);
  return { ppid: f(4), ticks: f(14) + f(15) + f(16) + f(17) };
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const st = readStat(pid);
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, [pid]);
    else list.push(pid);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** CPU seconds used so far by `pid` and its descendants; null when pid is gone. */
export function cpuSeconds(pid: number): number | null {
  const own = readStat(pid);
  if (own === null) return null;
  let ticks = own.ticks;
  for (const d of descendants(pid)) ticks += readStat(d)?.ticks ?? 0;
  return ticks / ticksPerSecond();
}

/**
 * Nanoseconds on a CPU so far of every live thread of `pid` and its
 * descendants (/proc/<pid>/task/<tid>/schedstat, first field); null when
 * pid is gone or the kernel keeps no schedstat. Exact where cpuSeconds
 * counts 10 ms ticks, but a thread that exits takes its time with it.
 */
export function cpuNanos(pid: number): number | null {
  let sum = 0;
  for (const p of [pid, ...descendants(pid)]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      if (p === pid) return null;
      continue;
    }
    for (const t of tids) {
      try {
        sum += Number(readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        if (p === pid && t === String(pid)) return null;
      }
    }
  }
  return Number.isFinite(sum) ? sum : null;
}

/** `of` summed over pids; null if any is gone (a dead daemon makes the figure meaningless). */
function sumOver(pids: readonly number[], of: (pid: number) => number | null): number | null {
  let sum = 0;
  for (const p of pids) {
    const x = of(p);
    if (x === null) return null;
    sum += x;
  }
  return sum;
}

/** cpuNanos summed over pids; null if any is gone. */
export const cpuNanosAll = (pids: readonly number[]): number | null => sumOver(pids, cpuNanos);

/** cpuSeconds summed over pids; null if any is gone. */
export const cpuSecondsAll = (pids: readonly number[]): number | null => sumOver(pids, cpuSeconds);

/** VmHWM (peak resident set) in kB; null when pid is gone. */
export function peakRssKb(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
