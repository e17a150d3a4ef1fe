/**
 * UDP socket for the batched data path: one per worker, SO_REUSEPORT so the
 * kernel spreads incoming flows over the workers. Workers receive and send
 * on the returned fd through native.ioWait / ioSend (bound with ioBind).
 */
import { WeftError } from '../errors.js';
import { isNativeError, native } from '../native/index.js';
import { formatIpv4 } from '../wire/ipv4-addr.js';

export interface UdpOptions {
  /** Local address, uint32 host order; 0 = any. */
  readonly addr: number;
  /** Local port; 0 = kernel's choice. */
  readonly port: number;
  /** SO_REUSEPORT: every worker binds the same addr:port. */
  readonly reusePort: boolean;
  /** Requested SO_RCVBUF in bytes (0 or absent = kernel default). */
  readonly rcvBuf?: number;
  /** Requested SO_SNDBUF in bytes (0 or absent = kernel default). */
  readonly sndBuf?: number;
}

function explain(o: UdpOptions, e: Error & { code: string }): string {
  const where = `${formatIpv4(o.addr)}:${o.port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return `another process (flanneld?) owns UDP port ${o.port} on ${formatIpv4(o.addr)}` +
        (o.addr !== 0 ? ' (or on 0.0.0.0)' : '') +
        '; stop it or change Backend.Port';
    case 'EADDRNOTAVAIL':
      return `cannot bind UDP ${where}: ${formatIpv4(o.addr)} is not an address of this host; ` +
        'check --public-ip / --iface';
    case 'EACCES':
    case 'EPERM':
      return `binding UDP ${where} was refused: ports below 1024 need root or ` +
        'CAP_NET_BIND_SERVICE, and buffer sizes above net.core.rmem_max/wmem_max need CAP_NET_ADMIN';
    case 'EMFILE':
    case 'ENFILE':
      return `out of file descriptors opening UDP ${where}; raise the open-files limit`;
    default:
      return `opening UDP ${where} failed: ${e.message}`;
  }
}

/** Opens and binds the socket; returns its fd. */
export function openUdp(opts: UdpOptions): number {
  try {
    return native.udpOpen(opts.addr, opts.port, opts.reusePort, opts.rcvBuf ?? 0, opts.sndBuf ?? 0);
  } catch (e) {
    if (isNativeError(e) && !(e instanceof WeftError) && /^E[A-Z0-9]+$/.test(e.code)) {
      throw new WeftError(e.code, explain(opts, e), { cause: e });
    }
    throw e;
  }
}

/** The bound port (useful after binding port 0). */
/**
 * Attaches a classic BPF program to the reuseport group of `fd` that picks
 * the receiving socket (of `sockets`, in bind order) from the inner IPv4
 * source and destination found `payloadOffset` bytes into each datagram's
 * payload (0 for flannel's udp backend, 22 for VXLAN), so one peer's flows
 * spread over the workers. See native/steer.c.
 */
export function steerByInnerFlow(fd: number, payloadOffset: number, sockets: number): void {
  (native as unknown as { udpSteerByInnerFlow(fd: number, off: number, n: number): void })
    .udpSteerByInnerFlow(fd, payloadOffset, sockets);
}
