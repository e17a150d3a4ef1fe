/**
 * A small strict parser of the Prometheus text exposition format 0.0.4,
 * for tests: every sample must belong to a family declared by HELP and
 * TYPE lines before it, names and labels must be well formed, values must
 * be floats, and no series may repeat. Throws on the first violation.
 */
export interface PromSample { name: string; labels: Record<string, string>; value: number }
export interface PromFamily { name: string; help: string; type: string; samples: PromSample[] }

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, line: string): number {
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any case
  // (prom-client writes "Nan" for a mean that has no samples yet).
  if (/^\+?inf(inity)?$/i.test(s)) return Infinity;
  if (/^-inf(inity)?$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value "${s}" in: ${line}`);
  return Number(s);
}

function familyOf(sample: string, fams: Map<string, PromFamily>): PromFamily | undefined {
  const direct = fams.get(sample);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sample.endsWith(suffix)) {
      const f = fams.get(sample.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    }
  }
  return undefined;
}

export function parsePromText(text: string): Map<string, PromFamily> {
  const fams = new Map<string, PromFamily>();
  const seen = new Set<string>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`);
      let f = fams.get(name);
      if (!f) { f = { name, help: '', type: '', samples: [] }; fams.set(name, f); }
      if (f.samples.length > 0) throw new Error(`${kind} after samples of ${name}`);
      if (kind === 'HELP') f.help = rest;
      else {
        if (!TYPES.has(rest)) throw new Error(`bad type in: ${line}`);
        if (f.type) throw new Error(`second TYPE for ${name}`);
        f.type = rest;
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const name = m[1]!;
    const labels: Record<string, string> = {};
    if (m[3] !== undefined && m[3] !== '') {
      const body = m[3];
      let i = 0;
      while (i < body.length) {
        const eq = body.indexOf('=', i);
        if (eq < 0) throw new Error(`bad labels in: ${line}`);
        const key = body.slice(i, eq);
        if (!LABEL.test(key)) throw new Error(`bad label name "${key}" in: ${line}`);
        if (body[eq + 1] !== '"') throw new Error(`unquoted label value in: ${line}`);
        let j = eq + 2;
        let v = '';
        for (;;) {
          if (j >= body.length) throw new Error(`unterminated label value in: ${line}`);
          const ch = body[j]!;
          if (ch === '\\') {
            const nx = body[j + 1];
            if (nx === 'n') v += '\n'; else if (nx === '\\' || nx === '"') v += nx;
            else throw new Error(`bad escape in: ${line}`);
            j += 2;
          } else if (ch === '"') { j++; break; } else { v += ch; j++; }
        }
        if (key in labels) throw new Error(`duplicate label ${key} in: ${line}`);
        labels[key] = v;
        if (j < body.length) {
          if (body[j] !== ',') throw new Error(`expected , in: ${line}`);
          j++;
        }
        i = j;
      }
    }
    const f = familyOf(name, fams);
    if (!f || !f.type || !f.help) throw new Error(`sample ${name} without HELP and TYPE before it`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`duplicate series: ${line}`);
    seen.add(key);
    const value = parseValue(m[4]!, line);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`negative counter: ${line}`);
    f.samples.push({ name, labels, value });
  }
  return fams;
}

/** The value of one series, or undefined. */
export function sampleValue(fams: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const f = fams.get(name);
  const s = f?.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}
