/**
 * net-conf.json: flannel's network configuration (kube-flannel ConfigMap,
 * or `<etcd-prefix>/config`). Parsed with flannel's rules so that a file
 * flanneld accepts means the same to weft (pkg/subnet/config.go:
 * ParseConfig + CheckNetworkConfig), with messages that say which key, which
 * value and what is allowed.
 */
import { readFile, stat } from 'node:fs/promises';
import { WeftError } from '../errors.js';
import {
  type Ipv4Prefix,
  formatIpv4,
  formatIpv4Prefix,
  parseIpv4Prefix,
  prefixContains,
  prefixMask,
  tryParseIpv4,
} from '../wire/ipv4-addr.js';
import { FLANNEL_UDP_PORT, VXLAN_PORT_LINUX } from '../wire/constants.js';
import { type Ipv6Prefix, formatIpv6, formatIpv6Prefix, ipv6Mask, tryParseIpv6, tryParseIpv6Prefix } from './ipv6.js';

export type BackendType =
  | 'udp'
  | 'vxlan'
  | 'host-gw'
  | 'wireguard'
  | 'alloc'
  | 'ipip'
  | 'ipsec'
  | 'extension'
  | 'tencent-vpc';

/** Every backend type flannel registers, in flannel's import order. */
export const KNOWN_BACKEND_TYPES: readonly BackendType[] = [
  'alloc',
  'extension',
  'host-gw',
  'ipip',
  'ipsec',
  'tencent-vpc',
  'udp',
  'vxlan',
  'wireguard',
];

export type VxlanMode = 'auto' | 'kernel' | 'userspace';
const VXLAN_MODES: readonly VxlanMode[] = ['auto', 'kernel', 'userspace'];

export type BackendConf =
  | { type: 'udp'; port: number }
  | {
      type: 'vxlan';
      vni: number;
      /** 0 in the file becomes the Linux kernel default 8472, as the kernel does. */
      port: number;
      /** 0 = derive from the underlay interface MTU. */
      mtu: number;
      gbp: boolean;
      learning: boolean;
      directRouting: boolean;
      /** weft's own key: kernel VXLAN device, userspace VTEP, or pick (auto). */
      mode: VxlanMode;
    }
  | {
      type: Exclude<BackendType, 'udp' | 'vxlan'>;
      /** The Backend object's other keys as written (Type removed). */
      options: Record<string, unknown>;
    };

export interface NetConf {
  /** Masked to its network address. {0,0} only when EnableIPv4 is false and Network is absent. */
  network: Ipv4Prefix;
  subnetLen: number;
  /** Network address of the lowest subnet that may be leased. */
  subnetMin: number;
  /** Network address of the highest subnet that may be leased. */
  subnetMax: number;
  enableIPv4: boolean;
  /** Passed through; weft's data plane is IPv4-only and the daemon rejects true. */
  enableIPv6: boolean;
  /** Masked, RFC 5952 text ("fd00:10:244::/56"), or null when absent. */
  ipv6Network: string | null;
  ipv6SubnetLen: number;
  enableNFTables: boolean;
  backend: BackendConf;
  /** The parsed JSON as written. */
  raw: unknown;
}

/** Number of addresses in one subnet of the given prefix length. */
export function subnetSize(subnetLen: number): number {
  return 2 ** (32 - subnetLen);
}

/** How many subnets lie between subnetMin and subnetMax inclusive. */
export function subnetCount(conf: Pick<NetConf, 'subnetLen' | 'subnetMin' | 'subnetMax'>): number {
  return Math.floor((conf.subnetMax - conf.subnetMin) / subnetSize(conf.subnetLen)) + 1;
}

function fail(message: string): never {
  throw new WeftError('ECONFIG', message);
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Go's encoding/json matches keys case-insensitively and the last matching
 * key in the document wins; a JSON null leaves the field at its default.
 */
function lookup(obj: Obj, key: string): unknown {
  const want = key.toLowerCase();
  let found: unknown = undefined;
  for (const k of Object.keys(obj)) {
    if (k.toLowerCase() === want) found = obj[k];
  }
  return found === null ? undefined : found;
}

function getBool(obj: Obj, key: string, where: string, dflt: boolean): boolean {
  const v = lookup(obj, key);
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') fail(`${where}${key} must be true or false, got ${show(v)}`);
  return v;
}

function getInt(obj: Obj, key: string, where: string, min: number, max: number, what: string): number | undefined {
  const v = lookup(obj, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`${where}${key} must be ${what}, got ${show(v)}`);
  }
  return v;
}

function getString(obj: Obj, key: string, where: string, example: string): string | undefined {
  const v = lookup(obj, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(`${where}${key} must be a string such as ${show(example)}, got ${show(v)}`);
  return v;
}

/** Line and column (1-based) of character `pos` in `text`. */
function lineCol(text: string, pos: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  return `line ${line} column ${col}`;
}

/** V8's JSON.parse message with the line and column, where V8 gives a position. */
function jsonError(text: string, e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  // The end of input has no position in the message; some others (an
  // unexpected token on Node 20) quote the text instead of giving one.
  const m = /at position (\d+)/.exec(msg);
  const pos = m ? Number(m[1]) : msg.startsWith('Unexpected end of JSON input') ? text.length : -1;
  const reason = msg.replace(/ in JSON at position \d+.*$/, '').replace(/, ".*" is not valid JSON$/s, '');
  const at = pos >= 0 ? ` at ${lineCol(text, pos)} (position ${pos})` : '';
  throw new WeftError('ECONFIG', `the network config is not valid JSON: ${reason}${at}`, { cause: e });
}

/** Parses and checks net-conf.json text; throws WeftError 'ECONFIG'. */
export function parseNetConf(text: string): NetConf {
  // Go's JSON decoder, flanneld's, refuses a byte-order mark too.
  if (text.charCodeAt(0) === 0xfeff) {
    throw new WeftError('ECONFIG', 'the network config starts with a UTF-8 byte-order mark (EF BB BF) at line 1 column 1, '
      + 'which is not JSON (flanneld refuses it too): save it as UTF-8 without BOM');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    jsonError(text, e);
  }
  if (!isObj(raw)) fail(`net-conf.json must be a JSON object such as {"Network": "10.244.0.0/16"}, got ${show(raw)}`);
  const root = raw;

  const enableIPv4 = getBool(root, 'EnableIPv4', '', true);
  const enableIPv6 = getBool(root, 'EnableIPv6', '', false);
  const enableNFTables = getBool(root, 'EnableNFTables', '', false);

  // Syntax is checked whether or not IPv4 is on (Go's Unmarshal would fail
  // either way); the range rules below only apply with EnableIPv4, as in flannel.
  const networkText = getString(root, 'Network', '', '10.244.0.0/16');
  let network: Ipv4Prefix = { addr: 0, len: 0 };
  if (networkText !== undefined) {
    try {
      network = parseIpv4Prefix(networkText);
    } catch {
      fail(`Network ${show(networkText)} is not an IPv4 CIDR; please define a correct Network parameter in the flannel config, e.g. "10.244.0.0/16"`);
    }
  }
  let subnetLen = getInt(root, 'SubnetLen', '', 0, 32, 'a prefix length between Network prefix + 2 and 30 (or 0 for the default)') ?? 0;
  const subnetMinText = getString(root, 'SubnetMin', '', '10.244.1.0');
  const subnetMaxText = getString(root, 'SubnetMax', '', '10.244.255.0');
  const parseAddr = (key: string, t: string | undefined): number => {
    if (t === undefined) return 0;
    const a = tryParseIpv4(t);
    if (a < 0) fail(`${key} ${show(t)} is not an IPv4 address (expected a.b.c.d inside Network)`);
    return a;
  };
  let subnetMin = parseAddr('SubnetMin', subnetMinText);
  let subnetMax = parseAddr('SubnetMax', subnetMaxText);

  if (enableIPv4) {
    // ip.IP4Net.Empty(): a missing Network and 0.0.0.0/0 both count as undefined.
    if (network.addr === 0 && network.len === 0) {
      fail(
        networkText === undefined
          ? 'please define a correct Network parameter in the flannel config: Network is missing (set it to the cluster pod CIDR, e.g. "10.244.0.0/16")'
          : `please define a correct Network parameter in the flannel config: Network ${show(networkText)} is the whole address space (use the cluster pod CIDR, e.g. "10.244.0.0/16")`,
      );
    }
    const net = formatIpv4Prefix(network);
    const prefix = network.len;
    if (subnetLen > 0) {
      // Each host needs room for a tunnel and a bridge address.
      if (subnetLen > 30) {
        fail(`SubnetLen ${subnetLen} is too long: SubnetLen must be less than /31 (allowed: ${Math.min(prefix + 2, 30)}..30 for Network ${net})`);
      }
      // The first subnet is never leased, so fewer than four is useless.
      if (subnetLen < prefix + 2) {
        fail(
          prefix + 2 > 30
            ? `SubnetLen ${subnetLen} with Network ${net}: network must be able to accommodate at least four subnets; Network is too small, use a prefix of /28 or shorter`
            : `SubnetLen ${subnetLen} with Network ${net}: network must be able to accommodate at least four subnets (allowed: ${prefix + 2}..30)`,
        );
      }
    } else if (prefix > 28) {
      fail(`Network ${net} is too small: network is too small. Minimum useful network prefix is /28`);
    } else {
      subnetLen = prefix <= 22 ? 24 : prefix + 2;
    }

    const size = subnetSize(subnetLen);
    const mask = prefixMask(subnetLen);
    const first = network.addr;
    const last = network.addr + subnetSize(prefix) - 1;
    const range = `${formatIpv4(first + size)}..${formatIpv4(last + 1 - size)} on /${subnetLen} boundaries`;
    // Skip the first subnet: its .0 is the Network's own address.
    if (subnetMin === 0) subnetMin = first + size;
    else if (!prefixContains(network, subnetMin)) {
      fail(`SubnetMin ${formatIpv4(subnetMin)}: SubnetMin is not in the range of the Network ${net} (allowed: ${range})`);
    }
    if (subnetMax === 0) subnetMax = last + 1 - size;
    else if (!prefixContains(network, subnetMax)) {
      fail(`SubnetMax ${formatIpv4(subnetMax)}: SubnetMax is not in the range of the Network ${net} (allowed: ${range})`);
    }
    if (((subnetMin & mask) >>> 0) !== subnetMin) {
      fail(`SubnetMin is not on a SubnetLen boundary: ${formatIpv4(subnetMin)} (SubnetLen ${subnetLen}; e.g. ${formatIpv4((subnetMin & mask) >>> 0)})`);
    }
    if (((subnetMax & mask) >>> 0) !== subnetMax) {
      fail(`SubnetMax is not on a SubnetLen boundary: ${formatIpv4(subnetMax)} (SubnetLen ${subnetLen}; e.g. ${formatIpv4((subnetMax & mask) >>> 0)})`);
    }
    // weft goes further: flannel would start and then report "out of subnets".
    if (subnetMin > subnetMax) {
      fail(`SubnetMin ${formatIpv4(subnetMin)} is above SubnetMax ${formatIpv4(subnetMax)}; SubnetMin must be ≤ SubnetMax`);
    }
  }

  const ipv6 = parseIpv6Part(root, enableIPv6);
  const backend = parseBackend(root);

  return {
    network,
    subnetLen,
    subnetMin,
    subnetMax,
    enableIPv4,
    enableIPv6,
    ipv6Network: ipv6.network,
    ipv6SubnetLen: ipv6.subnetLen,
    enableNFTables,
    backend,
    raw,
  };
}

function parseIpv6Part(root: Obj, enabled: boolean): { network: string | null; subnetLen: number } {
  const text = getString(root, 'IPv6Network', '', 'fd00:10:244::/56');
  let net: Ipv6Prefix | null = null;
  if (text !== undefined) {
    net = tryParseIpv6Prefix(text);
    if (net === null) fail(`IPv6Network ${show(text)} is not an IPv6 CIDR (expected e.g. "fd00:10:244::/56")`);
  }
  let subnetLen = getInt(root, 'IPv6SubnetLen', '', 0, 128, 'a prefix length between IPv6Network prefix + 2 and 126 (or 0 for the default)') ?? 0;
  const minText = getString(root, 'IPv6SubnetMin', '', 'fd00:10:244:1::');
  const maxText = getString(root, 'IPv6SubnetMax', '', 'fd00:10:244:ff::');
  const addr = (key: string, t: string | undefined): bigint => {
    if (t === undefined) return 0n;
    const a = tryParseIpv6(t);
    if (a < 0n) fail(`${key} ${show(t)} is not an IPv6 address`);
    return a;
  };
  const min = addr('IPv6SubnetMin', minText);
  const max = addr('IPv6SubnetMax', maxText);
  if (!enabled) return { network: net && formatIpv6Prefix(net), subnetLen: subnetLen || 64 };

  if (net === null || (net.addr === 0n && net.len === 0)) {
    fail('please define a correct IPv6Network parameter in the flannel config: IPv6Network is missing or ::/0 while EnableIPv6 is true (e.g. "fd00:10:244::/56")');
  }
  const shown = formatIpv6Prefix(net);
  if (subnetLen > 0) {
    if (subnetLen > 126) fail(`IPv6SubnetLen ${subnetLen} is too long: SubnetLen must be less than /127 (allowed: up to 126)`);
    if (subnetLen < net.len + 2) {
      fail(`IPv6SubnetLen ${subnetLen} with IPv6Network ${shown}: network must be able to accommodate at least four subnets (allowed: ${net.len + 2}..126)`);
    }
  } else if (net.len > 124) {
    fail(`IPv6Network ${shown} is too small: IPv6Network is too small. Minimum useful network prefix is /124`);
  } else {
    subnetLen = net.len <= 62 ? 64 : net.len + 2;
  }
  const netMask = ipv6Mask(net.len);
  const subMask = ipv6Mask(subnetLen);
  for (const [key, v] of [['IPv6SubnetMin', min], ['IPv6SubnetMax', max]] as const) {
    if (v === 0n) continue;
    if ((v & netMask) !== net.addr) fail(`${key} ${formatIpv6(v)}: ${key} is not in the range of the IPv6Network ${shown}`);
    if ((v & subMask) !== v) fail(`${key} is not on a SubnetLen boundary: ${formatIpv6(v)} (IPv6SubnetLen ${subnetLen})`);
  }
  return { network: shown, subnetLen };
}

function parseBackend(root: Obj): BackendConf {
  const be = lookup(root, 'Backend');
  // Absent Backend is udp in flannel's code (parseBackendType), whatever its docs say.
  if (be === undefined && !Object.keys(root).some((k) => k.toLowerCase() === 'backend')) {
    return { type: 'udp', port: FLANNEL_UDP_PORT };
  }
  const known = KNOWN_BACKEND_TYPES.join(', ');
  if (!isObj(be)) fail(`Backend must be an object such as {"Type": "vxlan"}, got ${show(be ?? null)}`);
  const typeRaw = lookup(be, 'Type');
  if (typeRaw === undefined) fail(`Backend.Type is missing (known types: ${known})`);
  if (typeof typeRaw !== 'string') fail(`Backend.Type must be a string (one of: ${known}), got ${show(typeRaw)}`);
  const type = typeRaw.toLowerCase();
  if (!(KNOWN_BACKEND_TYPES as readonly string[]).includes(type)) {
    fail(`Backend.Type ${show(typeRaw)} is not a backend type flannel knows (known types: ${known})`);
  }
  const w = 'Backend.';
  switch (type as BackendType) {
    case 'udp':
      return { type: 'udp', port: getInt(be, 'Port', w, 1, 65535, 'a UDP port 1..65535') ?? FLANNEL_UDP_PORT };
    case 'vxlan': {
      const modeRaw = getString(be, 'Mode', w, 'auto');
      const mode = modeRaw === undefined ? 'auto' : modeRaw.toLowerCase();
      if (!(VXLAN_MODES as readonly string[]).includes(mode)) {
        fail(`Backend.Mode ${show(modeRaw)} is not a VXLAN mode (allowed: ${VXLAN_MODES.join(', ')})`);
      }
      const port = getInt(be, 'Port', w, 0, 65535, 'a UDP port 0..65535 (0 = kernel default 8472)') ?? 0;
      const mtu = getInt(be, 'MTU', w, 0, 65535, 'an MTU 68..65535 (or 0 = underlay MTU)') ?? 0;
      if (mtu !== 0 && mtu < 68) fail(`Backend.MTU must be an MTU 68..65535 (or 0 = underlay MTU), got ${mtu}`);
      return {
        type: 'vxlan',
        vni: getInt(be, 'VNI', w, 0, 0xffffff, 'a VXLAN network identifier 0..16777215') ?? 1,
        port: port === 0 ? VXLAN_PORT_LINUX : port,
        mtu,
        gbp: getBool(be, 'GBP', w, false),
        learning: getBool(be, 'Learning', w, false),
        directRouting: getBool(be, 'DirectRouting', w, false),
        mode: mode as VxlanMode,
      };
    }
    default: {
      const options: Record<string, unknown> = {};
      for (const k of Object.keys(be)) if (k.toLowerCase() !== 'type') options[k] = be[k];
      return { type: type as Exclude<BackendType, 'udp' | 'vxlan'>, options };
    }
  }
}

/**
 * net-conf.json's text from a file; errors name the file, the flag and,
 * with `kubeHint`, the ConfigMap it comes from. Anything but a regular file
 * (a FIFO would block start-up forever) is refused before it is opened.
 */
export async function readNetConfText(path: string, kubeHint: boolean): Promise<string> {
  const where = kubeHint
    ? '; with --kube-subnet-mgr it is the net-conf.json key of the kube-flannel-cfg ConfigMap, mounted at /etc/kube-flannel/'
    : '';
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WeftError('ECONFIG', `network config ${path} does not exist: create it (net-conf.json, e.g. {"Network": "10.244.0.0/16", `
        + `"Backend": {"Type": "vxlan"}}) or point --net-config-path at it${where}`, { cause: e });
    }
    throw new WeftError('ECONFIG', `cannot read network config ${path} (--net-config-path): ${(e as Error).message}${where}`, { cause: e });
  }
  if (!st.isFile()) {
    const kind = st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'not a regular file';
    throw new WeftError('ECONFIG', `network config ${path} is ${kind}, not a file: point --net-config-path at the net-conf.json file${where}`);
  }
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new WeftError('ECONFIG', `cannot read network config ${path} (--net-config-path): ${(e as Error).message}${where}`, { cause: e });
  }
}

/** parseNetConf with errors naming `source`, where the text was read (a file, or "etcd key …"). */
export function parseNetConfFrom(text: string, source: string): NetConf {
  try {
    return parseNetConf(text);
  } catch (e) {
    if (e instanceof WeftError) throw new WeftError(e.code, `${source}: ${e.message}`, { cause: e });
    throw e;
  }
}
