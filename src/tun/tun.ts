/**
 * TUN device: one multi-queue device, one fd per data-plane worker.
 * The fds are non-blocking; workers wait and read through native.ioWait
 * (bound once with ioBind) and write with native.tunWrite. Configuring the link (address, MTU, up) is
 * src/netlink's job, not this module's.
 */
import { WeftError } from '../errors.js';
import { isNativeError, native } from '../native/index.js';

export interface TunDevice {
  /** The name the kernel gave the device (differs from the request for "tun%d"). */
  readonly name: string;
  /** One fd per queue, in queue order. */
  readonly fds: number[];
}

/** The kernel's MAX_TAP_QUEUES. */
export const MAX_TUN_QUEUES = 256;

function explain(name: string, queues: number, e: Error & { code: string }): string {
  switch (e.code) {
    case 'EPERM':
    case 'EACCES':
      return `opening TUN device ${name} needs root or CAP_NET_ADMIN ` +
        '(and read/write access to /dev/net/tun); run weft as root or grant the capability';
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return '/dev/net/tun is missing or has no driver: load the tun module (modprobe tun); ' +
        'in a container, mount the host\'s /dev/net/tun (or `mknod /dev/net/tun c 10 200`)';
    case 'EINVAL':
      return `a link named ${name} already exists and is not a multi-queue TUN ` +
        '(a single-queue TUN, e.g. left by flanneld, or another kind of link); ' +
        `delete it (ip link del ${name}) or choose another name`;
    case 'EBUSY':
      return `TUN device ${name} exists without multi-queue and another process has it open ` +
        '(flanneld?); stop that process or delete the device';
    case 'E2BIG':
      return `TUN device ${name} cannot take ${queues} more queues (the kernel allows ` +
        `${MAX_TUN_QUEUES} in all); lower the worker count`;
    case 'EMFILE':
    case 'ENFILE':
      return `out of file descriptors opening ${queues} TUN queues; raise the open-files limit`;
    default:
      return `opening TUN device ${name} with ${queues} queue(s) failed: ${e.message}`;
  }
}

/**
 * Opens `queues` queues of TUN device `name` (created if absent; removed by
 * the kernel when the last queue closes unless made persistent). `flags`
 * TUN_VNET_HDR opens every queue with IFF_VNET_HDR (the offload path).
 */
export function openTun(name: string, queues: number, flags = 0): TunDevice {
  if (!Number.isInteger(queues) || queues < 1 || queues > MAX_TUN_QUEUES) {
    throw new WeftError('EINVAL', `TUN queue count must be 1..${MAX_TUN_QUEUES} (got ${queues})`);
  }
  if (Buffer.byteLength(name) > 15) {
    throw new WeftError('EINVAL', `TUN device name "${name}" is longer than 15 bytes (IFNAMSIZ)`);
  }
  let fds: number[];
  try {
    fds = native.tunOpen(name, queues, flags);
  } catch (e) {
    if (isNativeError(e) && !(e instanceof WeftError) && /^E[A-Z0-9]+$/.test(e.code)) {
      throw new WeftError(e.code, explain(name === '' ? 'tun%d' : name, queues, e), { cause: e });
    }
    throw e;
  }
  let actual: string;
  try {
    actual = native.tunName(fds[0] as number);
  } catch (e) {
    closeTun(fds);
    throw e;
  }
  return { name: actual, fds };
}

/**
 * Closes every queue, even when one close fails; an fd already closed
 * (EBADF) is not an error. Throws the first other error after closing all.
 */
export function closeTun(fds: readonly number[]): void {
  let first: unknown;
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch (e) {
      if (isNativeError(e, 'EBADF')) continue;
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}
