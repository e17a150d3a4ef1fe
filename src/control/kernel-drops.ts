/**
 * Losses that happen in the kernel, outside weft's own counters: datagrams
 * our UDP sockets could not queue (receive buffer full) and packets the
 * kernel could not queue to the TUN because the workers did not read fast
 * enough. Read on demand for status and metrics, never on the packet path.
 */
import { readFileSync } from 'node:fs';

export interface KernelDrops {
  /** Sum of the `drops` column of /proc/net/udp for sockets bound to our port. */
  udpSocket: number;
  /** tx_dropped of the TUN device (its queue was full). */
  tunQueue: number;
}

/** Parses /proc/net/udp text: the drops of every socket whose local port is `port`. */
export function udpSocketDrops(procNetUdp: string, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let total = 0;
  for (const line of procNetUdp.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (cols.length < 13 || !cols[1]!.endsWith(`:${hexPort}`)) continue;
    const d = Number(cols[12]);
    if (Number.isFinite(d)) total += d;
  }
  return total;
}

function readNumber(path: string): number {
  try {
    const v = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

export function readKernelDrops(tunName: string, port: number): KernelDrops {
  let udp = 0;
  try {
    udp = udpSocketDrops(readFileSync('/proc/net/udp', 'utf8'), port);
  } catch {
    udp = 0;
  }
  const tun = tunName === '' ? 0 : readNumber(`/sys/class/net/${tunName}/statistics/tx_dropped`);
  return { udpSocket: udp, tunQueue: tun };
}
