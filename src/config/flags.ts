/**
 * flanneld-compatible command line: Go's `flag` package syntax, every flag
 * also from `FLANNELD_<NAME>` when the command line does not give it
 * (coreos/pkg/flagutil.SetFlagsFromEnv), so existing DaemonSets and systemd
 * units run weft unchanged. One table (FLAGS) drives parsing, env lookup and
 * `--help`, so docs can be generated from it.
 *
 * Every flag flanneld v0.28 defines is accepted. The ones weft cannot
 * honour carry `ignored` with the reason; giving one logs that reason at
 * start-up (ignoredFlagWarnings).
 */
import { WeftError } from '../errors.js';

export type FlagType = 'bool' | 'string' | 'int' | 'list';

export interface FlagSpec {
  readonly name: string;
  readonly type: FlagType;
  readonly default: boolean | string | number | readonly string[];
  readonly help: string;
  /** weft's own flag (flanneld does not have it). */
  readonly weft?: true;
  /** Accepted so existing manifests keep working; has no effect in weft, for this reason. */
  readonly ignored?: string;
  /** false: never read from FLANNELD_* (flanneld checks these before env). */
  readonly env?: false;
  /** Env value is a comma-separated list (FLANNELD_IFACE=eth0,10.0.0.5). */
  readonly envSplit?: true;
}

export const FLAGS = [
  { name: 'etcd-endpoints', type: 'string', default: 'http://127.0.0.1:4001,http://127.0.0.1:2379', help: 'a comma-delimited list of etcd endpoints; weft uses etcd only when this is given (flag or FLANNELD_ETCD_ENDPOINTS), else its local lease store' },
  { name: 'etcd-prefix', type: 'string', default: '/coreos.com/network', help: 'etcd prefix' },
  { name: 'etcd-keyfile', type: 'string', default: '', help: 'SSL key file used to secure etcd communication' },
  { name: 'etcd-certfile', type: 'string', default: '', help: 'SSL certification file used to secure etcd communication' },
  { name: 'etcd-cafile', type: 'string', default: '', help: 'SSL Certificate Authority file used to secure etcd communication' },
  { name: 'etcd-username', type: 'string', default: '', help: 'username for BasicAuth to etcd' },
  { name: 'etcd-password', type: 'string', default: '', help: 'password for BasicAuth to etcd' },
  { name: 'iface', type: 'list', default: [], envSplit: true, help: 'interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each option in order. Returns the first match found.' },
  { name: 'iface-regex', type: 'list', default: [], help: 'regex expression to match the first interface to use (IP or name) for inter-host communication. Can be specified multiple times to check each regex in order. Returns the first match found. Regexes are checked after specific interfaces specified by the iface option have already been checked.' },
  { name: 'iface-can-reach', type: 'string', default: '', help: "detect interface to use (IP or name) for inter-host communication based on which will be used for provided IP. This is exactly the interface to use of command 'ip route get <ip-address>'" },
  { name: 'subnet-file', type: 'string', default: '/run/flannel/subnet.env', help: 'filename where env variables (subnet, MTU, ... ) will be written to' },
  { name: 'public-ip', type: 'string', default: '', help: 'IP accessible by other nodes for inter-host communication' },
  { name: 'public-ipv6', type: 'string', default: '', ignored: 'weft carries IPv4 only, so no IPv6 address is published', help: 'IPv6 accessible by other nodes for inter-host communication' },
  { name: 'subnet-lease-renew-margin', type: 'int', default: 60, help: 'subnet lease renewal margin, in minutes, ranging from 1 to 1439' },
  { name: 'ip-masq', type: 'bool', default: false, help: 'setup IP masquerade rule for traffic destined outside of overlay network' },
  { name: 'ip-masq-fully-random-disable', type: 'bool', default: false, help: 'disable fully-random mode for MASQUERADE' },
  { name: 'kube-subnet-mgr', type: 'bool', default: false, help: 'contact the Kubernetes API for subnet assignment instead of etcd.' },
  { name: 'kube-api-url', type: 'string', default: '', help: 'Kubernetes API server URL. Does not need to be specified if flannel is running in a pod.' },
  { name: 'kube-annotation-prefix', type: 'string', default: 'flannel.alpha.coreos.com', help: 'Kubernetes annotation prefix. Can contain single slash "/", otherwise it will be appended at the end.' },
  { name: 'kubeconfig-file', type: 'string', default: '', help: 'kubeconfig file location. Does not need to be specified if flannel is running in a pod.' },
  { name: 'version', type: 'bool', default: false, env: false, help: 'print version and exit' },
  { name: 'healthz-ip', type: 'string', default: '0.0.0.0', help: 'the IP address for healthz server to listen' },
  { name: 'healthz-port', type: 'int', default: 0, help: 'the port for healthz server to listen(0 to disable)' },
  { name: 'iptables-resync', type: 'int', default: 5, help: 'resync period for iptables rules, in seconds' },
  { name: 'iptables-forward-rules', type: 'bool', default: true, help: 'add default accept rules to FORWARD chain in iptables' },
  { name: 'ip-blackhole-route', type: 'bool', default: false, help: 'add a blackhole route for this node\'s subnet (checked every --iptables-resync seconds), so traffic to an unassigned pod address is dropped here instead of leaving by the default route' },
  { name: 'net-config-path', type: 'string', default: '/etc/kube-flannel/net-conf.json', help: 'path to the network configuration file' },
  { name: 'set-node-network-unavailable', type: 'bool', default: true, help: 'set NodeNetworkUnavailable after ready' },
  { name: 'use-multi-cluster-cidr', type: 'bool', default: false, ignored: 'the MultiClusterCIDR API is gone from Kubernetes and from flanneld', help: 'use MultiClusterCIDR API (alpha)' },
  { name: 'persistent-mac', type: 'bool', default: false, ignored: 'weft always keeps the VTEP MAC across restarts', help: 'keep MAC address of flannel.1 interface beyond reboots (alpha)' },
  { name: 'v', type: 'int', default: 0, help: 'number for the log level verbosity (weft logs more at 1 and 2)' },
  { name: 'vmodule', type: 'string', default: '', ignored: 'weft does not log through klog', help: 'comma-separated list of pattern=N settings for file-filtered logging' },
  { name: 'log_backtrace_at', type: 'string', default: '', ignored: 'weft does not log through klog', help: 'when logging hits line file:N, emit a stack trace' },
  { name: 'help', type: 'bool', default: false, env: false, help: 'print this message' },
  { name: 'lease-dir', type: 'string', default: '/var/lib/weft/leases', weft: true, help: 'directory of the local lease store (used without etcd or --kube-subnet-mgr)' },
  { name: 'workers', type: 'int', default: 0, weft: true, help: 'data-path worker threads, one TUN queue each (0 = min(cores, 4))' },
  { name: 'control-socket', type: 'string', default: '/run/weft/weft.sock', weft: true, help: 'unix socket for the weft CLI (status, peers, stats)' },
  { name: 'tun-name', type: 'string', default: 'flannel0', weft: true, help: 'name of the TUN device of the udp backend' },
  { name: 'test-hooks', type: 'bool', default: false, weft: true, help: 'enable hooks used by the test suite; never in production' },
  { name: 'offloads', type: 'bool', default: true, weft: true, help: 'use the kernel offloads the start-up probes accept (false = plain per-packet I/O everywhere)' },
  { name: 'offload-tun', type: 'bool', default: true, weft: true, help: 'TUN super-packets (IFF_VNET_HDR, TUNSETOFFLOAD: checksum, TSO, USO)' },
  { name: 'offload-gso', type: 'bool', default: true, weft: true, help: 'send split super-packets as UDP_SEGMENT runs (needs offload-tun)' },
  { name: 'offload-gro', type: 'bool', default: true, weft: true, help: 'receive runs of datagrams with UDP_GRO' },
  { name: 'offload-coalesce', type: 'bool', default: true, weft: true, help: 'merge received TCP/UDP segments into super-packets before the TUN write (needs offload-tun)' },
  { name: 'log-format', type: 'string', default: 'text', weft: true, help: 'text: klog lines as flanneld writes them; json: one JSON object per line (ts, level, msg, fields)' },
  { name: 'metrics-per-peer', type: 'bool', default: false, weft: true, help: 'also export per-peer packet and byte series on /metrics (four per peer: grows with the cluster)' },
  { name: 'keep-warm', type: 'int', default: 0, weft: true, help: 'for 1 s after its last packet an idle worker runs a dry forwarding turn every this many ms, so a packet after a pause finds the path in CPU cache (0 = off, the default)' },
] as const satisfies readonly FlagSpec[];

export interface Flags {
  etcdEndpoints: string;
  etcdPrefix: string;
  etcdKeyfile: string;
  etcdCertfile: string;
  etcdCafile: string;
  etcdUsername: string;
  etcdPassword: string;
  iface: string[];
  ifaceRegex: string[];
  ifaceCanReach: string;
  subnetFile: string;
  publicIp: string;
  publicIpv6: string;
  subnetLeaseRenewMargin: number;
  ipMasq: boolean;
  ipMasqFullyRandomDisable: boolean;
  kubeSubnetMgr: boolean;
  kubeApiUrl: string;
  kubeAnnotationPrefix: string;
  kubeconfigFile: string;
  version: boolean;
  healthzIp: string;
  healthzPort: number;
  iptablesResync: number;
  iptablesForwardRules: boolean;
  ipBlackholeRoute: boolean;
  netConfigPath: string;
  setNodeNetworkUnavailable: boolean;
  useMultiClusterCidr: boolean;
  persistentMac: boolean;
  v: number;
  vmodule: string;
  logBacktraceAt: string;
  help: boolean;
  leaseDir: string;
  workers: number;
  controlSocket: string;
  tunName: string;
  testHooks: boolean;
  offloads: boolean;
  offloadTun: boolean;
  offloadGso: boolean;
  offloadGro: boolean;
  offloadCoalesce: boolean;
  logFormat: string;
  metricsPerPeer: boolean;
  keepWarm: number;
  /** Flag names (as in FLAGS) given on the command line or through env. */
  explicit: Set<string>;
}

// Compile-time guard: the Flags interface and the FLAGS table must agree.
type Camel<S extends string> = S extends `${infer H}-${infer T}`
  ? `${H}${Capitalize<Camel<T>>}`
  : S extends `${infer H}_${infer T}`
    ? `${H}${Capitalize<Camel<T>>}`
    : S;
type ValueOf<T extends FlagType> = T extends 'bool' ? boolean : T extends 'string' ? string : T extends 'int' ? number : string[];
type TableValues = { [F in (typeof FLAGS)[number] as Camel<F['name']>]: ValueOf<F['type']> };
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
export type FlagsMatchTable = Assert<Equal<Omit<Flags, 'explicit'>, TableValues>>;

/** "subnet-lease-renew-margin" → "subnetLeaseRenewMargin" (the Flags field). */
export function flagKey(name: string): string {
  return name.replace(/[-_]([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** "iface-regex" → "FLANNELD_IFACE_REGEX" (flagutil.SetFlagsFromEnv). */
export function flagEnvName(name: string): string {
  return `FLANNELD_${name.toUpperCase().replace(/-/g, '_')}`;
}

const BY_NAME = new Map<string, FlagSpec>(FLAGS.map((f) => [f.name, f]));

function usage(message: string): never {
  throw new WeftError('EUSAGE', message);
}

/** strconv.ParseBool: exactly these spellings. */
export function parseGoBool(text: string): boolean | undefined {
  switch (text) {
    case '1': case 't': case 'T': case 'true': case 'TRUE': case 'True':
      return true;
    case '0': case 'f': case 'F': case 'false': case 'FALSE': case 'False':
      return false;
    default:
      return undefined;
  }
}

/** strconv.ParseInt(s, 0, 64): decimal, 0x/0o/0b, leading-0 octal, '_' separators. */
export function parseGoInt(text: string): number | undefined {
  const m = /^([+-]?)(0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/.exec(text);
  if (m === null) return undefined;
  let body = (m[2] as string).replace(/_/g, '');
  let base = 10;
  if (/^0[xX]/.test(body)) { base = 16; body = body.slice(2); }
  else if (/^0[bB]/.test(body)) { base = 2; body = body.slice(2); }
  else if (/^0[oO]/.test(body)) { base = 8; body = body.slice(2); }
  else if (body.length > 1 && body[0] === '0') { base = 8; body = body.slice(1); }
  const v = parseInt(body, base);
  if (!Number.isSafeInteger(v)) return undefined;
  return m[1] === '-' ? -v : v;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

/** The closest known flag name, or null when nothing is close. */
export function suggestFlag(name: string): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const f of FLAGS) {
    const d = levenshtein(name, f.name);
    if (d < bestD) { bestD = d; best = f.name; }
  }
  if (best !== null && bestD <= Math.max(2, Math.floor(name.length / 3))) return best;
  // "--kube-subnet" → "--kube-subnet-mgr": an unambiguous prefix.
  const pre = FLAGS.filter((f) => name.length >= 3 && f.name.startsWith(name));
  return pre.length === 1 ? (pre[0] as FlagSpec).name : null;
}

function setValue(values: Record<string, unknown>, spec: FlagSpec, text: string, source: string, fromEnv: boolean): void {
  const key = flagKey(spec.name);
  switch (spec.type) {
    case 'bool': {
      const b = parseGoBool(text);
      if (b === undefined) usage(`invalid value ${JSON.stringify(text)} for ${source}: expected true or false (also 1/0, t/f, TRUE/FALSE)`);
      values[key] = b;
      return;
    }
    case 'int': {
      const n = parseGoInt(text);
      if (n === undefined) usage(`invalid value ${JSON.stringify(text)} for ${source}: expected an integer`);
      values[key] = n;
      return;
    }
    case 'string':
      values[key] = text;
      return;
    case 'list': {
      const list = values[key] as string[];
      if (fromEnv && spec.envSplit === true) {
        for (const part of text.split(',')) if (part.trim() !== '') list.push(part.trim());
      } else {
        list.push(text);
      }
      return;
    }
  }
}

/**
 * Parses argv (without node and script) like Go's flag.FlagSet.Parse, then
 * fills flags the command line left out from FLANNELD_* in `env`.
 * As in Go, parsing stops at the first non-flag argument or after "--";
 * everything from there on is returned in `positionals`.
 */
export function parseFlags(argv: string[], env: Record<string, string | undefined>): { flags: Flags; positionals: string[] } {
  const values: Record<string, unknown> = {};
  for (const f of FLAGS as readonly FlagSpec[]) {
    values[flagKey(f.name)] = Array.isArray(f.default) ? [...(f.default as string[])] : f.default;
  }
  const explicit = new Set<string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const s = argv[i] as string;
    if (s.length < 2 || s[0] !== '-') break;
    let dashes = 1;
    if (s[1] === '-') {
      dashes = 2;
      if (s.length === 2) { i++; break; } // "--" ends the flags and is consumed
    }
    const body = s.slice(dashes);
    if (body.length === 0 || body[0] === '-' || body[0] === '=') usage(`bad flag syntax: ${s}`);
    const eq = body.indexOf('=');
    let name = eq < 0 ? body : body.slice(0, eq);
    if (name === 'h') name = 'help'; // Go's flag package answers -h like -help
    const spec = BY_NAME.get(name);
    if (spec === undefined) {
      const hint = suggestFlag(name);
      usage(`unknown flag --${name}${hint === null ? '' : `; did you mean --${hint}?`} (weft --help lists the flags)`);
    }
    const shown = `${'-'.repeat(dashes)}${name}`;
    if (spec.type === 'bool') {
      // Go takes no separate value for booleans: "--ip-masq false" is
      // --ip-masq=true followed by the positional "false".
      setValue(values, spec, eq < 0 ? 'true' : body.slice(eq + 1), `flag ${shown}`, false);
    } else if (eq >= 0) {
      setValue(values, spec, body.slice(eq + 1), `flag ${shown}`, false);
    } else {
      if (i + 1 >= argv.length) usage(`flag needs an argument: ${shown} (give ${shown}=VALUE or ${shown} VALUE)`);
      setValue(values, spec, argv[++i] as string, `flag ${shown}`, false);
    }
    explicit.add(spec.name);
  }
  const positionals = argv.slice(i);

  for (const f of FLAGS as readonly FlagSpec[]) {
    if (explicit.has(f.name) || f.env === false) continue;
    const envName = flagEnvName(f.name);
    const v = env[envName];
    // flagutil ignores empty variables.
    if (v === undefined || v === '') continue;
    setValue(values, f, v, `environment variable ${envName} (flag --${f.name})`, true);
    explicit.add(f.name);
  }

  const flags = values as unknown as Flags;
  flags.explicit = explicit;
  validate(flags);
  return { flags, positionals };
}

function range(name: string, v: number, min: number, max: number, what: string): void {
  if (v < min || v > max) usage(`--${name}=${v} is out of range: ${what}`);
}

function validate(f: Flags): void {
  range('subnet-lease-renew-margin', f.subnetLeaseRenewMargin, 1, 24 * 60 - 1, 'the lease renew margin is in minutes, 1..1439 (leases last 24 h)');
  range('healthz-port', f.healthzPort, 0, 65535, 'a TCP port 1..65535, or 0 to disable');
  range('iptables-resync', f.iptablesResync, 1, 86400, 'seconds between iptables checks, 1..86400');
  // klog's levels are int32; flanneld accepts any of them.
  range('v', f.v, -(2 ** 31), 2 ** 31 - 1, 'a klog verbosity level (a 32-bit integer, e.g. 2)');
  checkVmodule(f.vmodule);
  checkBacktraceAt(f.logBacktraceAt);
  range('workers', f.workers, 0, 1024, 'number of worker threads, or 0 for min(cores, 4)');
  if (f.logFormat !== 'text' && f.logFormat !== 'json') usage(`--log-format=${JSON.stringify(f.logFormat)}: use text or json`);
  range('keep-warm', f.keepWarm, 0, 100, 'milliseconds between keep-warm ticks, 1..100, or 0 to turn them off');
  if (f.tunName.length === 0 || f.tunName.length > 15 || /[\s/]/.test(f.tunName)) {
    usage(`--tun-name=${JSON.stringify(f.tunName)} is not a valid interface name (1..15 characters, no spaces or "/")`);
  }
}

/** klog's --vmodule syntax: "pattern=N[,pattern=N…]", as flanneld refuses anything else. */
function checkVmodule(text: string): void {
  if (text === '') return;
  for (const part of text.split(',')) {
    const m = /^([^=]+)=([+-]?\d+)$/.exec(part.trim());
    if (m === null) usage(`--vmodule=${JSON.stringify(text)}: syntax error: expect comma-separated list of filename=N (e.g. daemon=2,kube*=4)`);
  }
}

/** klog's --log_backtrace_at syntax: "file.go:N". */
function checkBacktraceAt(text: string): void {
  if (text === '') return;
  if (!/^[^:]+:\d+$/.test(text)) usage(`--log_backtrace_at=${JSON.stringify(text)}: syntax error: expect file.go:234`);
}

/** Flags whose value the start-up banner does not print. */
const SECRET_FLAGS = new Set(['etcd-password']);

/**
 * Every daemon flag's effective value, `--name=value` in table order
 * (lists comma-joined, secrets redacted), for the start-up banner.
 */
export function formatEffectiveFlags(f: Flags): string {
  const out: string[] = [];
  for (const spec of FLAGS as readonly FlagSpec[]) {
    if (spec.env === false) continue; // --version, --help: never in effect for a running daemon
    const raw = (f as unknown as Record<string, unknown>)[flagKey(spec.name)];
    let text = Array.isArray(raw) ? raw.join(',') : String(raw);
    if (SECRET_FLAGS.has(spec.name) && text !== '') text = '<redacted>';
    out.push(`--${spec.name}=${/[\s"]/.test(text) ? JSON.stringify(text) : text}`);
  }
  return out.join(' ');
}

/** One start-up warning per ignored flag the command line or env gave. */
export function ignoredFlagWarnings(f: Flags): string[] {
  const out: string[] = [];
  for (const spec of FLAGS as readonly FlagSpec[]) {
    if (spec.ignored === undefined || !f.explicit.has(spec.name)) continue;
    const v = (f as unknown as Record<string, unknown>)[flagKey(spec.name)];
    out.push(`--${spec.name}=${String(v)} is accepted for flanneld compatibility and ignored: ${spec.ignored}`);
  }
  return out;
}

function wrap(text: string, indent: string, width: number): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur.length > 0 && indent.length + cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else {
      cur = cur.length > 0 ? `${cur} ${w}` : w;
    }
  }
  if (cur.length > 0) lines.push(cur);
  return lines.map((l) => indent + l).join('\n');
}

/** `--help` text in the shape of Go's flag.PrintDefaults, generated from FLAGS. */
export function formatHelp(program = 'weft'): string {
  const out: string[] = [`Usage: ${program} [OPTION]...`, ''];
  for (const f of FLAGS as readonly FlagSpec[]) {
    const valueName = f.type === 'bool' ? '' : f.type === 'list' ? ' value' : ` ${f.type}`;
    out.push(`  --${f.name}${valueName}`);
    let help: string = f.help;
    if (f.type === 'string' && f.default !== '') help += ` (default ${JSON.stringify(f.default)})`;
    else if (f.type === 'int' && f.default !== 0) help += ` (default ${String(f.default)})`;
    else if (f.type === 'bool' && f.default === true) help += ' (default true)';
    if (f.type === 'list') help += ' (repeatable)';
    if (f.weft === true) help += ' (weft only)';
    if (f.ignored !== undefined) help += ` (accepted for flanneld compatibility; ignored by weft: ${f.ignored})`;
    out.push(wrap(help, '        ', 80));
    if (f.env !== false) out.push(`        env ${flagEnvName(f.name)}${f.envSplit === true ? ' (comma-separated list)' : ''}`);
  }
  return `${out.join('\n')}\n`;
}
