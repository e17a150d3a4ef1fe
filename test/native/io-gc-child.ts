/**
 * Run as `node --expose-gc io-gc-child.js`: binds ioBind contexts and
 * prints (JSON) what process.memoryUsage().arrayBuffers shows while they
 * are held, and after they are dropped (half of them unbound first) and
 * collected. native.test.ts checks the numbers.
 */
import { native, type IoBinding, type IoContext } from '../../src/native/index.js';
import { testBinding } from './io-binding.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const slab = new Uint8Array(4096);
// Fds 0 and 0: a context is only made and dropped here, never waited on.
const binding = (): IoBinding => testBinding(0, 0, slab, 8, 100);
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
