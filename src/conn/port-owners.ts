/**
 * Who else holds a UDP port in this network namespace: the sockets in
 * /proc/net/udp bound to it, and the processes whose fds point at them
 * (where /proc lets us see them). Control plane only: start-up uses it to
 * refuse a foreign member of our SO_REUSEPORT group, and to name the owner
 * of a port a kernel VXLAN device cannot bind.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { formatIpv4 } from '../wire/ipv4-addr.js';

export interface UdpSocket {
  /** Local IPv4 address (uint32); 0 = any. */
  addr: number;
  port: number;
  /** 0 for a kernel socket (a vxlan device's). */
  inode: number;
}

/** /proc/net/udp's table: the address is little-endian hex on x86 and arm alike ("0100007F:1F90" = 127.0.0.1:8080). */
export function parseProcNetUdp(text: string): UdpSocket[] {
  const out: UdpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const m = /^([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})$/.exec(f[1] ?? '');
    if (m === null || f.length < 10) continue;
    const le = parseInt(m[1]!, 16);
    const addr = (((le & 0xff) << 24) | (((le >>> 8) & 0xff) << 16) | (((le >>> 16) & 0xff) << 8) | (le >>> 24)) >>> 0;
    out.push({ addr, port: parseInt(m[2]!, 16), inode: Number(f[9]) });
  }
  return out;
}

/** Processes holding each socket inode, as "pid 1234 (socat)". */
export function socketHolders(inodes: ReadonlySet<number>, procRoot = '/proc'): Map<number, string[]> {
  const out = new Map<number, string[]>();
  if (inodes.size === 0) return out;
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(procRoot, pid, 'fd'));
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(procRoot, pid, 'fd', fd));
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m === null || !inodes.has(Number(m[1]))) continue;
      let comm = '?';
      try {
        comm = readFileSync(join(procRoot, pid, 'comm'), 'utf8').trim();
      } catch { /* gone */ }
      const list = out.get(Number(m[1])) ?? [];
      const who = `pid ${pid} (${comm})`;
      if (!list.includes(who)) list.push(who);
      out.set(Number(m[1]), list);
    }
  }
  return out;
}

/**
 * The sockets on `port` that would share datagrams sent to `addr` (bound to
 * it or to any address) other than `ours`, described for a message; [] when
 * there are none.
 */
export function foreignOnPort(port: number, addr: number, ours: ReadonlySet<number>, procRoot = '/proc'): string[] {
  let text = '';
  try {
    text = readFileSync(join(procRoot, 'net', 'udp'), 'utf8');
  } catch {
    return [];
  }
  const others = parseProcNetUdp(text).filter((s) => s.port === port && (s.addr === 0 || s.addr === addr) && !ours.has(s.inode));
  const holders = socketHolders(new Set(others.map((s) => s.inode).filter((i) => i !== 0)), procRoot);
  return others.map((s) => {
    const where = `${formatIpv4(s.addr)}:${port}`;
    if (s.inode === 0) return `${where} (a kernel socket: a vxlan device, or flanneld's)`;
    const who = holders.get(s.inode);
    return `${where} (${who !== undefined ? who.join(', ') : `socket inode ${s.inode}, held by a process not visible here`})`;
  });
}
