/**
 * subnet.env: the file the flannel CNI plugin reads to configure pods. It
 * must stay byte-compatible with flanneld's WriteSubnetFile
 * (pkg/subnet/subnet.go): same keys, same order, same number formatting.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fsError, WeftError } from '../errors.js';
import { type Ipv4Prefix, formatIpv4, formatIpv4Prefix, parseIpv4Prefix, tryParseIpv4 } from '../wire/ipv4-addr.js';
import { formatIpv6, formatIpv6Prefix, ipv6Mask, tryParseIpv6Prefix } from './ipv6.js';

export interface SubnetEnvValues {
  network: Ipv4Prefix;
  /** The lease (a network address); the file gets its first host address. */
  subnet: Ipv4Prefix;
  mtu: number;
  ipMasq: boolean;
  /** IPv6 network CIDR; the FLANNEL_IPV6_* lines appear only with both. */
  ipv6Network?: string;
  /** IPv6 lease CIDR; written as its first host address, like IPv4. */
  ipv6Subnet?: string;
}

function ipv6Cidr(key: string, text: string): { addr: bigint; len: number } {
  const p = tryParseIpv6Prefix(text);
  if (p === null) throw new WeftError('ECONFIG', `${key} ${JSON.stringify(text)} is not an IPv6 CIDR`);
  return p;
}

/**
 * The text flanneld writes, e.g.
 *   FLANNEL_NETWORK=10.244.0.0/16
 *   FLANNEL_SUBNET=10.244.1.1/24
 *   FLANNEL_MTU=1472
 *   FLANNEL_IPMASQ=true
 * with FLANNEL_IPV6_NETWORK / FLANNEL_IPV6_SUBNET between SUBNET and MTU.
 */
export function formatSubnetEnv(v: SubnetEnvValues): string {
  if (!Number.isInteger(v.mtu) || v.mtu <= 0) throw new WeftError('ECONFIG', `FLANNEL_MTU must be a positive integer, got ${v.mtu}`);
  // flannel: sn.IncrementIP() — the first host address keeps the lease's length.
  const firstHost = { addr: (v.subnet.addr + 1) >>> 0, len: v.subnet.len };
  let text = `FLANNEL_NETWORK=${formatIpv4Prefix(v.network)}\n`;
  text += `FLANNEL_SUBNET=${formatIpv4(firstHost.addr)}/${firstHost.len}\n`;
  if (v.ipv6Network !== undefined && v.ipv6Subnet !== undefined) {
    const net6 = ipv6Cidr('ipv6Network', v.ipv6Network);
    const sn6 = ipv6Cidr('ipv6Subnet', v.ipv6Subnet);
    const first6 = ((sn6.addr & ipv6Mask(sn6.len)) + 1n) & ((1n << 128n) - 1n);
    text += `FLANNEL_IPV6_NETWORK=${formatIpv6Prefix(net6)}\n`;
    text += `FLANNEL_IPV6_SUBNET=${formatIpv6(first6)}/${sn6.len}\n`;
  }
  text += `FLANNEL_MTU=${v.mtu}\n`;
  text += `FLANNEL_IPMASQ=${v.ipMasq ? 'true' : 'false'}\n`;
  return text;
}

/** mkdir -p, with every directory it creates set to 0755 whatever the umask. */
async function mkdirp755(target: string): Promise<void> {
  const dir = resolve(target);
  const first = await mkdir(dir, { recursive: true, mode: 0o755 });
  if (first === undefined) return;
  // mkdir returns the topmost directory it created; walk down to `dir`.
  let cur = first;
  await chmod(cur, 0o755);
  for (const part of relative(first, dir).split(sep)) {
    if (part === '') continue;
    cur = join(cur, part);
    await chmod(cur, 0o755);
  }
}

/**
 * Atomic replace: the CNI plugin may read at any moment, so it must see the
 * old file or the new one, never a half-written one. Temp file in the same
 * directory (rename(2) does not cross filesystems), fsync, 0644, rename,
 * then fsync the directory so the rename survives a crash.
 */
export async function writeSubnetEnv(path: string, text: string): Promise<void> {
  try {
    await writeAtomically(path, text);
  } catch (e) {
    throw fsError(e, `the subnet file ${path} (--subnet-file)`);
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdirp755(dir);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
      await fh.chmod(0o644);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is done anyway.
    } finally {
      await dh.close();
    }
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
}

/**
 * KEY=VALUE lines; null when the file does not exist. Tolerates blank lines,
 * `#` comments, `export ` prefixes and quoted values (godotenv, which flanneld
 * uses to read it back, accepts those too).
 */
export async function readSubnetEnv(path: string): Promise<Record<string, string> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return parseSubnetEnv(text);
}

export function parseSubnetEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rawLine of text.split(/\r?\n/)) {
    let line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trim();
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

/**
 * The subnet leased last time (FLANNEL_SUBNET masked to its network), to
 * ask for it again; null when the file or the key is missing or unreadable,
 * as flanneld's ReadCIDRFromSubnetFile does.
 */
export async function previousSubnet(path: string): Promise<Ipv4Prefix | null> {
  const env = await readSubnetEnv(path).catch(() => null);
  const v = env?.['FLANNEL_SUBNET'];
  if (v === undefined) return null;
  try {
    return parseIpv4Prefix(v);
  } catch {
    return null;
  }
}

/**
 * weft's note beside subnet.env: the PublicIP published with its subnet, so
 * a restart after the node's address changed can tell its own lease (held
 * by that old PublicIP) from another node's. `<subnet-file>.publicip`,
 * one line "<subnet> <PublicIP>".
 */
export function publicIpNotePath(subnetFile: string): string {
  return `${subnetFile}.publicip`;
}

export async function writePublicIpNote(subnetFile: string, subnet: Ipv4Prefix, publicIp: number): Promise<void> {
  await writeSubnetEnv(publicIpNotePath(subnetFile), `${formatIpv4Prefix(subnet)} ${formatIpv4(publicIp)}\n`);
}

/** The PublicIP this node published with `subnet`, or null (no note, another subnet, unreadable). */
export async function previousPublicIp(subnetFile: string, subnet: Ipv4Prefix | null): Promise<number | null> {
  if (subnet === null) return null;
  const text = await readFile(publicIpNotePath(subnetFile), 'utf8').catch(() => '');
  const [net, ip] = text.trim().split(' ');
  if (net !== formatIpv4Prefix(subnet) || ip === undefined) return null;
  const v = tryParseIpv4(ip);
  return v < 0 ? null : v;
}
