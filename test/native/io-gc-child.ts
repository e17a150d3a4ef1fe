/**
 * Run as `node --expose-gc io-gc-child.js`: binds ioBind contexts and
 * prints (JSON) what process.memoryUsage().arrayBuffers shows while they
 * are held, and after they are dropped (half of them unbound first) and
 * collected. native.test.ts checks the numbers.
 */
import { native, type IoContext } from '../../src/native/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const max = 8;
const slab = new Uint8Array(4096);
const binding = (): Parameters<typeof native.ioBind>[0] => ({
  tunFd: 0, udpFd: 0, slab, tunOffs: new Uint32Array(max), tunLens: new Uint32Array(max), tunCap: 100,
  udpOffs: new Uint32Array(max).fill(1024), udpLens: new Uint32Array(max), udpSegs: new Uint32Array(max),
  udpAddrs: new Uint32Array(max), udpPorts: new Uint32Array(max), udpCap: 100, max, gro: false,
  sendOffs: new Uint32Array(4), sendLens: new Uint32Array(4), sendSegs: new Uint32Array(4),
  sendAddrs: new Uint32Array(4), sendPorts: new Uint32Array(4), sendRes: new Int32Array(3), sendMax: 4,
  deliverOffs: new Uint32Array(1), deliverLens: new Uint32Array(1), deliverMax: 1, deliverRes: new Uint32Array(2),
  mergeOff: 0, mergeCap: 0, mergeFlags: 0, maxPktLen: 0,
});
const settle = async (): Promise<number> => {
  // Finalizers run after the collection, from the event loop.
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return process.memoryUsage().arrayBuffers;
};

const base = await settle();
let held: IoContext[] = [];
for (let i = 0; i < 1000; i++) held.push(native.ioBind(binding()));
const whileHeld = await settle();
for (let i = 0; i < held.length; i += 2) native.ioUnbind(held[i]!);
held = [];
for (let i = 0; i < 4000; i++) {
  const c = native.ioBind(binding());
  if (i % 2 === 0) native.ioUnbind(c);
}
const after = await settle();
process.stdout.write(JSON.stringify({ base, whileHeld, after }));
