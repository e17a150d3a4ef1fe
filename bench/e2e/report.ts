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
  ping: PingSample | null;
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

export interface ReportMeta {
  date: string;
  kernel: string;
  cores: number;
  cpuModel: string;
  node: string;
  rounds: number;
  seconds: number;
}

export function markdown(meta: ReportMeta, variants: readonly string[], samples: readonly Sample[], summary: Summary,
  kernel: string, peers: readonly string[]): string {
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
