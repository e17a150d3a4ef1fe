/**
 * Turns the raw samples into the Markdown table (min / median / max per
 * figure, ratios of each weft variant) and a hand-written SVG chart.
 */

export interface TcpSample {
  gbps: number;
  retransmits: number | null;
  bytes: number;
  seconds: number;
  /** Receiver Gbit/s per 1-s interval. */
  intervalsGbps: number[];
}

export interface UdpSample {
  /** Datagrams received per second at the server. */
  pps: number;
  lossPercent: number | null;
  packetsSent: number | null;
  packetsReceived: number | null;
  bytes: number;
  seconds: number;
}

export interface PingSample {
  sent: number;
  received: number;
  rttMs: number[];
  medianMs: number | null;
  /**
   * CPU time of the tunnel daemons' threads over the ping's wall time, % of
   * one core (null without a daemon): what a daemon spends on sparse
   * traffic, including what it spends to stay ready for it (with
   * --keep-warm, its ticks; see docs/configuration.md#keep-warm).
   */
  daemonCpuPct: number | null;
}

/** Pings sent each as soon as the last reply came (ping -i 0), and what the daemons spent on them. */
export interface PingBackToBack {
  sent: number;
  received: number;
  medianMs: number | null;
  /** CPU time of the tunnel daemons' threads per reply received, µs (null without a daemon). */
  daemonCpuUsPerRtt: number | null;
}

export interface Sample {
  variant: string;
  round: number;
  startedAt: string;
  setupMs: number | null;
  mtu: number | null;
  /** First failure of the round (null when every measurement ran). */
  error: string | null;
  errors: string[];
  /** Things that went wrong but were recovered from (e.g. a restarted iperf3 server). */
  notes: string[];
  ping: PingSample | null;
  pingB2b: PingBackToBack | null;
  tcp1: TcpSample | null;
  tcp4: TcpSample | null;
  udp64: UdpSample | null;
  cpu: { daemonSeconds: number | null; bytesMoved: number; secondsPerGB: number | null } | null;
  rss: { perDaemonKb: (number | null)[]; peakMB: number | null } | null;
  extra: Record<string, unknown> | null;
}

export interface Figure {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  digits: number;
  get(s: Sample): number | null;
}

export const FIGURES: readonly Figure[] = [
  { key: 'tcp1Gbps', label: 'TCP 1 stream Gbit/s', better: 'higher', digits: 2, get: (s) => s.tcp1?.gbps ?? null },
  { key: 'tcp1Retr', label: 'TCP 1 retr', better: 'lower', digits: 0, get: (s) => s.tcp1?.retransmits ?? null },
  { key: 'tcp4Gbps', label: 'TCP 4 streams Gbit/s', better: 'higher', digits: 2, get: (s) => s.tcp4?.gbps ?? null },
  { key: 'tcp4Retr', label: 'TCP 4 retr', better: 'lower', digits: 0, get: (s) => s.tcp4?.retransmits ?? null },
  { key: 'udp64Kpps', label: 'UDP 64 B kpps rcvd', better: 'higher', digits: 1, get: (s) => (s.udp64 ? s.udp64.pps / 1000 : null) },
  { key: 'udp64Loss', label: 'UDP 64 B loss %', better: 'lower', digits: 1, get: (s) => s.udp64?.lossPercent ?? null },
  { key: 'rttMs', label: 'ping RTT median ms', better: 'lower', digits: 3, get: (s) => s.ping?.medianMs ?? null },
  { key: 'pingCpuPct', label: 'daemon CPU % of a core, 10 ms ping', better: 'lower', digits: 1, get: (s) => s.ping?.daemonCpuPct ?? null },
  { key: 'rttB2bMs', label: 'ping back-to-back RTT median ms', better: 'lower', digits: 3, get: (s) => s.pingB2b?.medianMs ?? null },
  { key: 'cpuUsPerRtt', label: 'daemon CPU µs per round trip', better: 'lower', digits: 1, get: (s) => s.pingB2b?.daemonCpuUsPerRtt ?? null },
  { key: 'cpuSecPerGB', label: 'daemon CPU s/GB', better: 'lower', digits: 2, get: (s) => s.cpu?.secondsPerGB ?? null },
  { key: 'rssMB', label: 'daemon peak RSS MB', better: 'lower', digits: 1, get: (s) => s.rss?.peakMB ?? null },
];

export interface Stat {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function stat(xs: readonly number[]): Stat | null {
  if (xs.length === 0) return null;
  return { n: xs.length, min: Math.min(...xs), median: median(xs) as number, max: Math.max(...xs) };
}

export type Summary = Record<string, Record<string, Stat | null>>;

export function summarize(variants: readonly string[], samples: readonly Sample[]): Summary {
  const out: Summary = {};
  for (const v of variants) {
    const mine = samples.filter((s) => s.variant === v);
    const row: Record<string, Stat | null> = {};
    for (const f of FIGURES) {
      row[f.key] = stat(mine.map((s) => f.get(s)).filter((x): x is number => x !== null && Number.isFinite(x)));
    }
    out[v] = row;
  }
  return out;
}

const fmt = (x: number, digits: number): string => x.toFixed(digits);

function cell(st: Stat | null | undefined, digits: number): string {
  if (!st) return '—';
  if (st.n === 1) return fmt(st.median, digits);
  return `${fmt(st.min, digits)} / **${fmt(st.median, digits)}** / ${fmt(st.max, digits)}`;
}

export interface RatioRow {
  figure: string;
  weft: number | null;
  kernel: number | null;
  vsKernel: number | null;
  peer: string | null;
  peerValue: number | null;
  vsPeer: number | null;
}

/** Medians of `weft` against kernel-vxlan and against the better of the userspace peers, per figure. */
export function ratios(summary: Summary, weft: string, kernel: string, peers: readonly string[]): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const f of FIGURES) {
    if (f.key.endsWith('Retr') || f.key === 'udp64Loss') continue;
    const w = summary[weft]?.[f.key]?.median ?? null;
    const k = summary[kernel]?.[f.key]?.median ?? null;
    let peer: string | null = null;
    let pv: number | null = null;
    for (const p of peers) {
      const v = summary[p]?.[f.key]?.median ?? null;
      if (v === null) continue;
      if (pv === null || (f.better === 'higher' ? v > pv : v < pv)) {
        pv = v;
        peer = p;
      }
    }
    const r = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b !== 0 ? a / b : null);
    rows.push({ figure: f.label, weft: w, kernel: k, vsKernel: r(w, k), peer, peerValue: pv, vsPeer: r(w, pv) });
  }
  return rows;
}

// ---------------------------------------------------------------- targets

/** A performance target from the issues, judged on medians: subject's figure against factor × reference's. */
export interface Target {
  text: string;
  issue: number;
  subject: string;
  reference: string;
  figure: string;
  /** atLeast: subject ≥ factor × reference (higher is better); atMost: subject ≤ factor × reference. */
  relation: 'atLeast' | 'atMost';
  factor: number;
}

// "Within N% of X" is read as "no more than N% worse than X": being faster
// than the reference meets it.
export const TARGETS: readonly Target[] = [
  { text: 'weft-udp TCP 1 stream ≥ 0.3× kernel-vxlan', issue: 4, subject: 'weft-udp', reference: 'kernel-vxlan', figure: 'tcp1Gbps', relation: 'atLeast', factor: 0.3 },
  { text: 'weft-udp TCP 1 stream ≥ 4× fastd', issue: 4, subject: 'weft-udp', reference: 'fastd', figure: 'tcp1Gbps', relation: 'atLeast', factor: 4 },
  { text: 'weft-udp UDP 64 B received pps ≥ 1.3× fastd', issue: 4, subject: 'weft-udp', reference: 'fastd', figure: 'udp64Kpps', relation: 'atLeast', factor: 1.3 },
  { text: "weft-udp ping RTT median ≤ fastd's", issue: 4, subject: 'weft-udp', reference: 'fastd', figure: 'rttMs', relation: 'atMost', factor: 1 },
  { text: "weft-udp daemon CPU s/GB ≤ fastd's", issue: 4, subject: 'weft-udp', reference: 'fastd', figure: 'cpuSecPerGB', relation: 'atMost', factor: 1 },
  { text: 'weft-vxlan-user TCP 1 stream within 15% of weft-udp', issue: 5, subject: 'weft-vxlan-user', reference: 'weft-udp', figure: 'tcp1Gbps', relation: 'atLeast', factor: 0.85 },
  { text: 'weft-vxlan-kernel TCP 1 stream within 10% of kernel-vxlan', issue: 5, subject: 'weft-vxlan-kernel', reference: 'kernel-vxlan', figure: 'tcp1Gbps', relation: 'atLeast', factor: 0.9 },
];

export interface TargetResult {
  target: string;
  issue: number;
  figure: string;
  subject: string;
  reference: string;
  subjectMedian: number | null;
  referenceMedian: number | null;
  /** factor × reference median: the value the subject must reach (atLeast) or stay under (atMost). */
  bound: number | null;
  /** subject / reference. */
  ratio: number | null;
  status: 'met' | 'missed' | 'n/a';
  /** How far the subject is from the bound, in % of the bound (null unless missed). */
  missedByPercent: number | null;
  /** Why n/a. */
  reason: string | null;
}

export function evaluateTargets(variants: readonly string[], summary: Summary, targets: readonly Target[] = TARGETS): TargetResult[] {
  return targets.map((t) => {
    const base = {
      target: t.text, issue: t.issue, figure: t.figure, subject: t.subject, reference: t.reference,
      subjectMedian: null, referenceMedian: null, bound: null, ratio: null, missedByPercent: null,
    };
    const absent = [t.subject, t.reference].filter((v) => !variants.includes(v));
    if (absent.length > 0) return { ...base, status: 'n/a', reason: `${absent.join(' and ')} not in this run` };
    const sv = summary[t.subject]?.[t.figure]?.median ?? null;
    const rv = summary[t.reference]?.[t.figure]?.median ?? null;
    const noData = [[t.subject, sv], [t.reference, rv]].filter(([, x]) => x === null).map(([v]) => v as string);
    if (sv === null || rv === null) return { ...base, subjectMedian: sv, referenceMedian: rv, status: 'n/a', reason: `no data for ${noData.join(' and ')}` };
    const bound = t.factor * rv;
    const met = t.relation === 'atLeast' ? sv >= bound : sv <= bound;
    let missedBy: number | null = null;
    if (!met) missedBy = bound === 0 ? null : (t.relation === 'atLeast' ? (1 - sv / bound) : (sv / bound - 1)) * 100;
    return {
      ...base, subjectMedian: sv, referenceMedian: rv, bound, ratio: rv !== 0 ? sv / rv : null,
      status: met ? 'met' : 'missed', missedByPercent: missedBy, reason: null,
    };
  });
}

function targetLines(results: readonly TargetResult[], rounds: number): string[] {
  const lines: string[] = ['', '## Targets (issues 4 and 5)', ''];
  lines.push(`Judged on the medians above${rounds < 3 ? ` — ${rounds} round(s) only: indicative, the issues ask for medians of 3 rounds` : ''}. "Within N%" means at most N% below the reference; faster meets it.`, '');
  for (const r of results) {
    const f = FIGURES.find((x) => x.key === r.figure);
    const d = f?.digits ?? 3;
    const unit = f === undefined ? '' : ` (${f.label})`;
    if (r.status === 'n/a') {
      lines.push(`- ${r.target}: n/a — ${r.reason ?? ''}`);
      continue;
    }
    const fig = `${(r.subjectMedian as number).toFixed(d)} vs bound ${(r.bound as number).toFixed(d)}${unit}, ratio ${r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`}`;
    const verdict = r.status === 'met' ? '**met**' : `**missed by ${r.missedByPercent === null ? '?' : r.missedByPercent.toFixed(1)}%**`;
    lines.push(`- ${r.target}: ${verdict} — ${fig}`);
  }
  return lines;
}

// ---------------------------------------------------------------- weft data paths

/**
 * The offloads block each weft daemon reported (`weft status --json` →
 * offloads), per variant and host: the last round that reported it wins,
 * null where no round did (daemon failed or status unreachable).
 */
export function weftOffloads(variants: readonly string[], samples: readonly Sample[]): Record<string, Record<string, unknown> | null> {
  const out: Record<string, Record<string, unknown> | null> = {};
  for (const v of variants.filter((x) => x.startsWith('weft'))) {
    let hosts: Record<string, unknown> | null = null;
    for (const s of samples) {
      if (s.variant !== v) continue;
      const status = (s.extra as { weftStatus?: Record<string, unknown> } | null)?.weftStatus;
      if (status === undefined) continue;
      for (const [h, st] of Object.entries(status)) {
        const off = (st as { offloads?: unknown } | null)?.offloads;
        if (off === undefined || off === null) {
          if (hosts === null || !(h in hosts)) (hosts ??= {})[h] = null;
        } else {
          (hosts ??= {})[h] = off;
        }
      }
    }
    out[v] = hosts;
  }
  return out;
}

function describeOffloads(off: unknown): string {
  if (off === null || typeof off !== 'object') return 'not reported';
  const o = off as Record<string, unknown>;
  const on = Object.entries(o).filter(([k, x]) => k !== 'path' && x === true).map(([k]) => k);
  const path = typeof o.path === 'string' ? o.path : 'unknown path';
  return `${path}${on.length > 0 ? ` (${on.join(', ')})` : ''}`;
}

/** weft-udp against weft-udp-plain (same daemon, --offloads=false): what the offload path buys. */
function offloadGainLines(variants: readonly string[], summary: Summary): string[] {
  const on = 'weft-udp';
  const off = 'weft-udp-plain';
  if (!variants.includes(on) || !variants.includes(off)) return [];
  const lines = ['', `## Offload gain: ${on} / ${off} (medians)`, '', `| figure | ${on} | ${off} | ratio |`, '|---|---:|---:|---:|'];
  for (const f of FIGURES) {
    if (f.key.endsWith('Retr') || f.key === 'udp64Loss') continue;
    const a = summary[on]?.[f.key]?.median ?? null;
    const b = summary[off]?.[f.key]?.median ?? null;
    const n = (x: number | null): string => (x === null ? '—' : x.toFixed(f.digits));
    lines.push(`| ${f.label} | ${n(a)} | ${n(b)} | ${a !== null && b !== null && b !== 0 ? `${(a / b).toFixed(2)}×` : '—'} |`);
  }
  return lines;
}

function offloadLines(paths: Record<string, Record<string, unknown> | null>): string[] {
  const names = Object.keys(paths);
  if (names.length === 0) return [];
  const lines = ['', '## weft data paths', '', 'As each daemon reported it (`weft status --json` → offloads):', ''];
  for (const v of names) {
    const hosts = paths[v];
    const text = hosts === null || hosts === undefined
      ? 'not reported (no round got that far)'
      : Object.entries(hosts).map(([h, o]) => `${h} ${describeOffloads(o)}`).join('; ');
    lines.push(`- ${v}: ${text}`);
  }
  return lines;
}

export interface ReportMeta {
  date: string;
  kernel: string;
  cores: number;
  cpuModel: string;
  node: string;
  rounds: number;
  seconds: number;
}

export interface MarkdownExtras {
  /** Per-variant caveats (printed under the table). */
  notes?: readonly string[];
  targets?: readonly TargetResult[];
  offloads?: Record<string, Record<string, unknown> | null>;
}

export function markdown(meta: ReportMeta, variants: readonly string[], samples: readonly Sample[], summary: Summary,
  kernel: string, peers: readonly string[], extras: MarkdownExtras = {}): string {
  const lines: string[] = [];
  lines.push(`# weft e2e bench, ${meta.date}`, '');
  lines.push(`Linux ${meta.kernel}, ${meta.cores} cores (${meta.cpuModel}), Node ${meta.node}; ${meta.rounds} round(s) × ${meta.seconds} s per iperf3 test, variants interleaved round by round, fresh namespaces per variant per round. Two hosts on a 1500-byte veth underlay, one pod each; pod MTU = overlay MTU.`, '');
  lines.push('Cells: min / **median** / max over rounds (one number when there was one round). CPU and RSS are the tunnel daemons\' own (no daemon for host-gw and kernel-vxlan: the kernel\'s work is not attributed).', '');
  lines.push(`| variant | MTU | ${FIGURES.map((f) => f.label).join(' | ')} |`);
  lines.push(`|---|---:|${FIGURES.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    const mtu = samples.find((s) => s.variant === v && s.mtu !== null)?.mtu;
    lines.push(`| ${v} | ${mtu ?? '—'} | ${FIGURES.map((f) => cell(summary[v]?.[f.key], f.digits)).join(' | ')} |`);
  }
  if (extras.notes !== undefined && extras.notes.length > 0) {
    lines.push('');
    for (const n of extras.notes) lines.push(`Note — ${n}`);
  }
  if (extras.targets !== undefined) lines.push(...targetLines(extras.targets, meta.rounds));
  if (extras.offloads !== undefined) lines.push(...offloadLines(extras.offloads));
  lines.push(...offloadGainLines(variants, summary));
  const wefts = variants.filter((v) => v.startsWith('weft'));
  for (const w of wefts) {
    lines.push('', `## ${w}: ratios of medians`, '');
    if (FIGURES.every((f) => !summary[w]?.[f.key])) {
      lines.push(`No data for ${w} (see Failures).`);
      continue;
    }
    lines.push(`| figure | ${w} | ${kernel} | ${w} / ${kernel} | best userspace peer | ${w} / peer |`);
    lines.push('|---|---:|---:|---:|---|---:|');
    for (const r of ratios(summary, w, kernel, peers)) {
      const n = (x: number | null, d = 3): string => (x === null ? '—' : x.toFixed(d));
      lines.push(`| ${r.figure} | ${n(r.weft)} | ${n(r.kernel)} | ${n(r.vsKernel, 2)} | ${r.peer === null ? '—' : `${r.peer} ${n(r.peerValue)}`} | ${n(r.vsPeer, 2)} |`);
    }
  }
  const noted = samples.filter((s) => s.notes.length > 0);
  if (noted.length > 0) {
    lines.push('', '## Recovered during the run', '');
    for (const s of noted) for (const n of s.notes) lines.push(`- ${s.variant}, round ${s.round}: ${oneLine(n)}`);
  }
  const failed = samples.filter((s) => s.errors.length > 0);
  if (failed.length > 0) {
    lines.push('', '## Failures', '');
    for (const s of failed) for (const e of s.errors) lines.push(`- ${s.variant}, round ${s.round}: ${oneLine(e)}`);
  }
  lines.push('');
  return lines.join('\n');
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 400 ? `${t.slice(0, 400)}…` : t;
}

// ---------------------------------------------------------------- SVG chart

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A "nice" axis maximum (1, 2, 2.5, 5 × 10^k) at or above x. */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

interface Series {
  label: string;
  color: string;
  key: string;
}

function panel(x0: number, y0: number, w: number, h: number, title: string, unit: string, variants: readonly string[],
  summary: Summary, series: readonly Series[], divisor: number, digits: number): string {
  const out: string[] = [];
  const left = 56;
  const bottom = 48;
  const top = 28;
  const plotW = w - left - 12;
  const plotH = h - top - bottom;
  let hi = 0;
  for (const v of variants) for (const s of series) hi = Math.max(hi, (summary[v]?.[s.key]?.max ?? 0) / divisor);
  const yMax = niceMax(hi);
  const y = (val: number): number => y0 + top + plotH - (val / yMax) * plotH;
  out.push(`<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const val = (yMax * i) / 5;
    const yy = y(val).toFixed(1);
    out.push(`<line x1="${x0 + left}" y1="${yy}" x2="${x0 + left + plotW}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 + left - 6}" y="${(y(val) + 4).toFixed(1)}" text-anchor="end" font-size="11">${esc(String(+val.toPrecision(3)))}</text>`);
  }
  out.push(`<text transform="translate(${x0 + 14},${y0 + top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(unit)}</text>`);
  out.push(`<line x1="${x0 + left}" y1="${y0 + top + plotH}" x2="${x0 + left + plotW}" y2="${y0 + top + plotH}" stroke="#333"/>`);
  const groupW = plotW / Math.max(1, variants.length);
  const barW = Math.min(36, (groupW * 0.7) / series.length);
  variants.forEach((v, gi) => {
    const gx = x0 + left + gi * groupW + (groupW - barW * series.length) / 2;
    let any = false;
    series.forEach((s, si) => {
      const st = summary[v]?.[s.key];
      if (!st) return;
      any = true;
      const bx = gx + si * barW;
      const med = st.median / divisor;
      out.push(`<rect x="${bx.toFixed(1)}" y="${y(med).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y0 + top + plotH - y(med)).toFixed(1)}" fill="${s.color}"><title>${esc(`${v} ${s.label}: median ${med.toFixed(digits)} (min ${(st.min / divisor).toFixed(digits)}, max ${(st.max / divisor).toFixed(digits)}) ${unit}`)}</title></rect>`);
      const cx = (bx + (barW - 2) / 2).toFixed(1);
      const yLo = y(st.min / divisor).toFixed(1);
      const yHi = y(st.max / divisor).toFixed(1);
      out.push(`<line x1="${cx}" y1="${yLo}" x2="${cx}" y2="${yHi}" stroke="#111" stroke-width="1.5"/>`);
      for (const yy of [yLo, yHi]) out.push(`<line x1="${(bx + (barW - 2) / 2 - 5).toFixed(1)}" y1="${yy}" x2="${(bx + (barW - 2) / 2 + 5).toFixed(1)}" y2="${yy}" stroke="#111" stroke-width="1.5"/>`);
      out.push(`<text x="${cx}" y="${(Math.min(y(st.max / divisor), y(med)) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${esc(med.toFixed(digits))}</text>`);
    });
    const lx = x0 + left + gi * groupW + groupW / 2;
    out.push(`<text x="${lx.toFixed(1)}" y="${y0 + top + plotH + 16}" text-anchor="middle" font-size="11">${esc(v)}</text>`);
    if (!any) out.push(`<text x="${lx.toFixed(1)}" y="${y0 + top + plotH - 8}" text-anchor="middle" font-size="10" fill="#a00">no data</text>`);
  });
  let lx = x0 + left;
  for (const s of series) {
    out.push(`<rect x="${lx}" y="${y0 + h - 18}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${lx + 16}" y="${y0 + h - 8}" font-size="11">${esc(s.label)}</text>`);
    lx += 20 + s.label.length * 6.5;
  }
  return out.join('\n');
}

/** Throughput (TCP 1 and 4 streams) and UDP packets/s per variant: median bars, min–max whiskers. */
export function svgChart(meta: ReportMeta, variants: readonly string[], summary: Summary): string {
  const width = Math.max(760, 120 + variants.length * 120);
  const ph = 300;
  const height = 56 + ph * 2 + 20;
  const body = [
    panel(0, 50, width, ph, 'TCP throughput, pod to pod', 'Gbit/s', variants, summary, [
      { label: '1 stream', color: '#4e79a7', key: 'tcp1Gbps' },
      { label: '4 streams', color: '#f28e2b', key: 'tcp4Gbps' },
    ], 1, 2),
    panel(0, 50 + ph + 10, width, ph, 'UDP, 64-byte payloads at full rate: packets received per second', 'kpps', variants, summary, [
      { label: 'received kpps', color: '#59a14f', key: 'udp64Kpps' },
    ], 1, 0),
  ].join('\n');
  const sub = `${meta.date} · Linux ${meta.kernel} · ${meta.cores} cores · Node ${meta.node} · ${meta.rounds} round(s) × ${meta.seconds} s · bars: median, whiskers: min–max`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="16" font-weight="bold">weft e2e bench</text>`,
    `<text x="${width / 2}" y="36" text-anchor="middle" font-size="11" fill="#555">${esc(sub)}</text>`,
    body,
    '</svg>',
    '',
  ].join('\n');
}
