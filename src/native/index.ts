/**
 * The only loader of the C addon (native/build/Release/weft.node). Every
 * other module imports `native` from here; nothing else calls require().
 *
 * Importing this module never throws: when the addon is missing, `native`
 * is a stand-in whose every member throws WeftError('ENATIVE') with the
 * fix, so tools that never touch the data path (config checks, --version)
 * still run. The daemon calls `requireNative()` at start to fail early.
 *
 * Conventions of the addon (native/weft.c):
 * - fds are plain numbers; addresses are uint32 host order (src/wire/ipv4-addr.ts).
 * - Batch calls take caller-owned typed arrays and return a count; offsets
 *   are byte offsets from the start of `slab` (a Uint8Array, which may be a
 *   view at a non-zero byteOffset). At most MAX_BATCH packets per call.
 * - Bad arguments throw TypeError (code ERR_INVALID_ARG_TYPE) or RangeError
 *   (ERR_OUT_OF_RANGE) before any system call; OS errors throw a
 *   NativeError with the errno name as `code` ('EPERM', 'EADDRINUSE').
 * - Loadable from worker_threads (context-aware); the addon's scratch
 *   arrays are per thread, so each worker calls it independently.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.js';

/** An OS error from the addon: `code` is the errno name. */
export interface NativeError extends Error {
  code: string;
  /** Positive errno value (Linux numbering). */
  errno?: number;
  /** The failing call, e.g. "ioctl TUNSETIFF", "bind", "recvmmsg". */
  syscall?: string;
}

export function isNativeError(e: unknown, code?: string): e is NativeError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' &&
    (code === undefined || (e as NativeError).code === code);
}

/** pollIn result bits. */
export const POLL_A = 1;
export const POLL_B = 2;

export interface NativeBinding {
  /** Largest `max`/`count` a batch call accepts. */
  readonly MAX_BATCH: number;
  /** tunOpen flag: also IFF_VNET_HDR (reserved for the offload path). */
  readonly TUN_VNET_HDR: number;

  /**
   * Opens `queues` fds on one TUN device (IFF_TUN|IFF_NO_PI|IFF_MULTI_QUEUE,
   * O_NONBLOCK|O_CLOEXEC). '' lets the kernel pick the name. On failure
   * closes what it opened and throws.
   */
  tunOpen(name: string, queues: number, flags: number): number[];
  /** Interface name behind a TUN fd (TUNGETIFF). */
  tunName(fd: number): string;
  /**
   * Reads up to `max` packets; packet i goes to slab[offs[i] ..
   * offs[i]+cap), lens[i] = its length. Returns the count (0 = nothing
   * pending). Throws only when the first read fails with a real error.
   */
  tunRead(fd: number, slab: Uint8Array, offs: Uint32Array, cap: number, lens: Uint32Array,
    max: number): number;
  /**
   * Writes `count` packets; returns how many the kernel accepted. Rejected
   * (EINVAL, EIO, ...) and no-room (EAGAIN, ENOBUFS) packets are skipped:
   * count - result = drops. Throws on EBADF/EBADFD/EFAULT.
   */
  tunWrite(fd: number, slab: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    count: number): number;

  /**
   * AF_INET UDP socket, non-blocking, bound to addr:port (0 = any). Buffer
   * sizes of 0 keep the kernel default; others use SO_*BUFFORCE when
   * permitted (root), else SO_*BUF.
   */
  udpOpen(addr: number, port: number, reusePort: boolean, rcvBuf: number,
    sndBuf: number): number;
  udpLocalPort(fd: number): number;
  /** [SO_RCVBUF, SO_SNDBUF] as the kernel reports them (twice the request). */
  sockBufSizes(fd: number): [rcv: number, snd: number];
  /**
   * recvmmsg. lens[i] is the datagram's real length: lens[i] > cap means it
   * was truncated. addrs/ports = source. Returns the count (0 = none).
   */
  udpRecv(fd: number, slab: Uint8Array, offs: Uint32Array, cap: number, lens: Uint32Array,
    addrs: Uint32Array, ports: Uint32Array, max: number): number;
  /**
   * sendmmsg to addrs[i]:ports[i]. A message the kernel refuses alone
   * (EMSGSIZE, ENETUNREACH, EINVAL, ...) is skipped; on a full socket it
   * waits 2 ms once, then gives up on the rest. Returns how many were sent.
   */
  udpSend(fd: number, slab: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    addrs: Uint32Array, ports: Uint32Array, count: number): number;

  /**
   * poll() for POLLIN on fdA and fdB (-1 = none). Returns POLL_A | POLL_B
   * bits, 0 on timeout or EINTR. Errors/hang-ups count as readable.
   */
  pollIn(fdA: number, fdB: number, timeoutMs: number): number;
  /**
   * Fixes a worker's fds, slab and slot arrays for ioWait/ioSend/ioDeliver
   * and returns the context they take. The slot offsets are checked and
   * copied now (changing tunOffs/udpOffs later has no effect) and the
   * receive headers are built once. The context is opaque (an external):
   * the raw pointers behind it are out of JS's reach, and it keeps `io`,
   * and so the arrays, alive until it is collected or unbound.
   */
  ioBind(io: IoBinding): IoContext;
  /** Ends a context now: it lets go of the arrays, and later uses throw. */
  ioUnbind(ctx: IoContext): void;
  /**
   * poll() on the bound TUN queue and socket, then reads what is ready in
   * the same call: as tunRead into tunOffs/tunLens, and as udpRecv (or
   * udpRecvGro when gro, segment sizes in udpSegs) into the udp arrays.
   * Returns tunCount | udpCount << IO_WAIT_UDP_SHIFT; 0 on timeout, EINTR
   * or nothing read. Read errors throw as tunRead/udpRecv do.
   */
  ioWait(ctx: IoContext, timeoutMs: number): number;
  /**
   * udpSendSeg on the bound socket, slab and send queue: messages
   * [0, count) of sendOffs/sendLens/sendSegs/sendAddrs/sendPorts, each
   * checked against the slab before anything is sent; sendRes gets
   * udpSendSeg's res. Returns the messages sent.
   */
  ioSend(ctx: IoContext, count: number): number;
  /**
   * The offload path's TUN write: vnetCoalesce of the bound deliver queue's
   * packets [0, count) (each checked against the slab and the merge area
   * first) into the merge area, with mergeFlags and maxPktLen, then the
   * write of what it made to the bound TUN queue, repeated until all are
   * merged. `write` false merges without writing. deliverRes gets
   * [written, refused] in merged packets; returns written. A fd-level write
   * error throws as tunWrite's.
   */
  ioDeliver(ctx: IoContext, count: number, write: boolean): number;
  /** Bit position of the datagram count in ioWait's result. */
  readonly IO_WAIT_UDP_SHIFT: number;
  close(fd: number): void;
  /** A non-blocking eventfd: a bound worker's ioWait returns when it is signalled. */
  eventfdOpen(): number;
  eventfdSignal(fd: number): void;

  // TUN offloads: split, coalesce, checksums (native/offload.c; src/offload/vnet.ts documents them).
  tunSetOffload(fd: number, flags: number): void;
  vnetSplit(slab: Uint8Array, inOff: number, inLen: number, outOff: number, outCap: number,
    maxPktLen: number, res: Uint32Array): number;
  vnetSplitPrefixed(slab: Uint8Array, inOff: number, inLen: number, outOff: number,
    outCap: number, maxPktLen: number, prefixOff: number, prefixLen: number,
    res: Uint32Array): number;
  vnetCoalesce(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number, outOff: number,
    outCap: number, outOffs: Uint32Array, outLens: Uint32Array, maxOut: number, flags: number,
    res: Uint32Array, maxPktLen?: number): number;
  csumComplete(slab: Uint8Array, offs: Uint32Array, lens: Uint32Array, n: number): number;

  // UDP GSO and GRO (native/udp_gso.c; src/conn/gso.ts uses them).
  readonly GSO_MAX_SEGMENTS: number;
  readonly GSO_MAX_BYTES: number;
  readonly GSO_RES_LEN: number;
  /** Linux EIO (5), for comparing with res[SEND_RES_ERRNO]. */
  readonly EIO: number;

  /**
   * setsockopt(SOL_UDP, UDP_GRO). false when the kernel has no UDP_GRO
   * (ENOPROTOOPT); other errors throw (EBADF, ENOTSOCK).
   */
  udpSetGro(fd: number, on: boolean): boolean;
  /**
   * sendmmsg of `count` messages; message i is slab[offs[i] .. +lens[i]] to
   * addrs[i]:ports[i] (uint32 host order). When segs[i] > 0 and lens[i] >
   * segs[i] it carries UDP_SEGMENT = segs[i]: the kernel sends
   * ceil(lens[i]/segs[i]) datagrams, the last shorter. RangeError before any
   * syscall for offs/lens outside the slab, lens[i] > 65507, more than 64
   * segments, ports[i] > 65535. Per-message errors skip that message; a full
   * socket gets one 2 ms wait, then the rest of the batch is dropped.
   * Throws on EBADF/ENOTSOCK/EFAULT. Returns messages sent; `res`, when
   * given, receives [datagrams sent, errno of the first message not sent
   * (0 = none), GSO messages refused with EIO].
   */
  udpSendSeg(fd: number, slab: Uint8Array, offs: Uint32Array, lens: Uint32Array,
    segs: Uint32Array, addrs: Uint32Array, ports: Uint32Array, count: number,
    res?: Int32Array): number;
  /**
   * recvmmsg with a control buffer per message. lens[i] = bytes (lens[i] >
   * cap: truncated, the rest is lost), segs[i] = UDP_GRO segment size (0 =
   * a single datagram), addrs/ports = source. 0 when nothing is pending.
   */
  udpRecvGro(fd: number, slab: Uint8Array, offs: Uint32Array, cap: number, lens: Uint32Array,
    segs: Uint32Array, addrs: Uint32Array, ports: Uint32Array, max: number): number;
}

/** What ioBind returns: held and passed back, never looked into. */
declare const ioContextBrand: unique symbol;
export interface IoContext {
  readonly [ioContextBrand]: true;
}

/** ioBind's arguments: what a worker reads into, fixed for its lifetime. */
export interface IoBinding {
  readonly tunFd: number;
  readonly udpFd: number;
  /** eventfdOpen()'s fd that ends ioWait early, or -1. */
  readonly wakeFd: number;
  readonly slab: Uint8Array;
  readonly tunOffs: Uint32Array;
  readonly tunLens: Uint32Array;
  /** Bytes each TUN slot takes. */
  readonly tunCap: number;
  readonly udpOffs: Uint32Array;
  readonly udpLens: Uint32Array;
  readonly udpSegs: Uint32Array;
  readonly udpAddrs: Uint32Array;
  readonly udpPorts: Uint32Array;
  /** Bytes each UDP slot takes. */
  readonly udpCap: number;
  /** Slots per batch, 1..MAX_BATCH; every array has at least this many. */
  readonly max: number;
  /** The socket has UDP_GRO on: receive with segment sizes. */
  readonly gro: boolean;
  /** ioSend's queue (read on every send, up to sendMax entries) and its res (>= 3 slots). */
  readonly sendOffs: Uint32Array;
  readonly sendLens: Uint32Array;
  readonly sendSegs: Uint32Array;
  readonly sendAddrs: Uint32Array;
  readonly sendPorts: Uint32Array;
  readonly sendRes: Int32Array;
  readonly sendMax: number;
  /** ioDeliver's queue (read on every call, up to deliverMax entries) and its res (>= 2 slots). */
  readonly deliverOffs: Uint32Array;
  readonly deliverLens: Uint32Array;
  readonly deliverMax: number;
  readonly deliverRes: Uint32Array;
  /** The slab area ioDeliver merges into (mergeCap 0: no area, ioDeliver unused). */
  readonly mergeOff: number;
  readonly mergeCap: number;
  /** vnetCoalesce's flags and longest merged packet (0 = no limit). */
  readonly mergeFlags: number;
  readonly maxPktLen: number;
}

const FUNCTIONS = [
  'tunOpen', 'tunName', 'tunRead', 'tunWrite', 'udpOpen', 'udpLocalPort', 'sockBufSizes',
  'udpRecv', 'udpSend', 'pollIn', 'ioBind', 'ioUnbind', 'ioWait', 'ioSend', 'ioDeliver', 'close', 'eventfdOpen', 'eventfdSignal',
  'udpSetGro', 'udpSendSeg', 'udpRecvGro', 'tunSetOffload', 'vnetSplit', 'vnetSplitPrefixed', 'vnetCoalesce', 'csumComplete',
] as const;
const CONSTANTS = ['MAX_BATCH', 'TUN_VNET_HDR', 'IO_WAIT_UDP_SHIFT', 'GSO_MAX_SEGMENTS', 'GSO_MAX_BYTES', 'GSO_RES_LEN', 'EIO'] as const;

/** From dist/src/native/ (compiled) the addon is three levels up. */
export function nativePath(): string {
  const env = process.env.WEFT_NATIVE_PATH;
  if (env !== undefined && env !== '') return env;
  return fileURLToPath(new URL('../../../native/build/Release/weft.node', import.meta.url));
}

function loadError(path: string, cause: unknown): WeftError {
  const why = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new WeftError('ENATIVE',
    `weft's native addon could not be loaded from ${path} (${why}). ` +
    'Build it with `npm ci` (or `node scripts/build-native.mjs`); building needs ' +
    'g++ (or gcc), make and python3, plus the Node.js headers. ' +
    'Set WEFT_NATIVE_PATH to use an addon built elsewhere.', { cause });
}

function unavailable(make: () => WeftError): NativeBinding {
  const fail = (): never => { throw make(); };
  const stub: Record<string, unknown> = {};
  for (const k of FUNCTIONS) stub[k] = fail;
  for (const k of CONSTANTS) Object.defineProperty(stub, k, { get: fail, enumerable: true });
  return stub as unknown as NativeBinding;
}

function load(): { binding: NativeBinding; error: WeftError | undefined } {
  const path = nativePath();
  try {
    const binding = createRequire(import.meta.url)(path) as NativeBinding;
    for (const k of FUNCTIONS) {
      if (typeof binding[k] !== 'function') {
        throw new Error(`the addon has no function ${k}; it is stale, rebuild it`);
      }
    }
    return { binding, error: undefined };
  } catch (cause) {
    const error = loadError(path, cause);
    return { binding: unavailable(() => loadError(path, cause)), error };
  }
}

const loaded = load();

/** The addon. Hot loops may destructure it once: `const { tunRead } = native`. */
export const native: NativeBinding = loaded.binding;

/** Why the addon did not load, or undefined when it did. */
export const nativeLoadError: WeftError | undefined = loaded.error;

/** Throws WeftError('ENATIVE') unless the addon loaded. */
export function requireNative(): NativeBinding {
  if (nativeLoadError !== undefined) throw nativeLoadError;
  return native;
}
