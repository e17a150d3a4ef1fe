/**
 * ioBind's argument for the native tests: `max` receive slots of `cap`
 * bytes per side, 128-byte aligned and back to back from slab offset 0
 * (the TUN's first), a send queue of 4, and no deliver queue or merge area
 * -- each unless `over` replaces it.
 */
import type { IoBinding } from '../../src/native/index.js';

export function testBinding(tunFd: number, udpFd: number, slab: Uint8Array, max: number, cap: number,
  over: Partial<IoBinding> = {}): IoBinding {
  const stride = Math.ceil(cap / 128) * 128;
  return {
    tunFd, udpFd, wakeFd: -1, slab, max, gro: false,
    tunOffs: Uint32Array.from({ length: max }, (_, i) => i * stride), tunLens: new Uint32Array(max), tunCap: cap,
    udpOffs: Uint32Array.from({ length: max }, (_, i) => (max + i) * stride), udpLens: new Uint32Array(max),
    udpSegs: new Uint32Array(max), udpAddrs: new Uint32Array(max), udpPorts: new Uint32Array(max), udpCap: cap,
    sendOffs: new Uint32Array(4), sendLens: new Uint32Array(4), sendSegs: new Uint32Array(4),
    sendAddrs: new Uint32Array(4), sendPorts: new Uint32Array(4), sendRes: new Int32Array(3), sendMax: 4,
    deliverOffs: new Uint32Array(1), deliverLens: new Uint32Array(1), deliverMax: 1, deliverRes: new Uint32Array(2),
    mergeOff: 0, mergeCap: 0, mergeFlags: 0, maxPktLen: 0,
    ...over,
  };
}
