/**
 * Traffic checks the integration tests share: ping both ways, a TCP
 * transfer with SHA-256 compared on both ends (tcp-sha.js in the pods),
 * stopping a daemon, and polling with a deadline that says what it saw.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { unlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ping, type Pod, type Testbed } from '../../src/testbed/index.js';
import type { WeftNode } from '../../src/testbed/weft-node.js';

const TCP_SHA = fileURLToPath(new URL('../integration/tcp-sha.js', import.meta.url));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let tcpPort = 7300;

/** `bytes` random bytes from → to over TCP; SHA-256 equal on both ends. */
export async function tcpTransfer(tb: Testbed, from: Pod, to: Pod, what: string, bytes = 16 << 20, timeoutMs = 30_000): Promise<void> {
  const port = String(tcpPort++);
  const server = tb.spawn(to.ns, [process.execPath, TCP_SHA, 'server', port], { pipe: true });
  let out = '';
  server.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const ready = Date.now() + 5000;
  while (!out.includes('listening') && Date.now() < ready) await sleep(20);
  assert.ok(out.includes('listening'), `${what}: tcp-sha server did not start`);
  const c = await tb.run(from.ns, [process.execPath, TCP_SHA, 'client', to.ip, port, String(bytes)], { timeoutMs });
  const sent = JSON.parse(c.stdout) as { bytes: number; sha256: string };
  const end = Date.now() + 10_000;
  while (out.split('\n').length < 3 && Date.now() < end) await sleep(20);
  const line = out.split('\n')[1];
  assert.ok(line, `${what}: the server printed no result: ${out}`);
  const got = JSON.parse(line) as { bytes: number; sha256: string };
  assert.equal(got.bytes, bytes, what);
  assert.equal(got.sha256, sent.sha256, what);
}

/** Four pings each way, all answered. */
export async function pingBoth(tb: Testbed, a: Pod, b: Pod, what: string): Promise<void> {
  const ab = await ping(tb, a.ns, b.ip, { count: 4, intervalS: 0.05 });
  const ba = await ping(tb, b.ns, a.ip, { count: 4, intervalS: 0.05 });
  assert.equal(ab.received, 4, `${what} ${a.ip}→${b.ip}: ${ab.output}`);
  assert.equal(ba.received, 4, `${what} ${b.ip}→${a.ip}: ${ba.output}`);
}

/** Polls `probe` every 50 ms until it returns true; the elapsed ms, or throws after `ms` with `explain()`. */
export async function within(ms: number, probe: () => Promise<boolean>, explain: () => Promise<string>): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${await explain()}`);
    await sleep(50);
  }
}

/** SIGTERM to this one daemon (SIGKILL after 5 s) and wait until it is gone; its subnet.env is removed. */
export async function stopNode(n: WeftNode): Promise<void> {
  const p: ChildProcess = n.proc;
  if (p.exitCode === null && p.signalCode === null) {
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }
  // The next start must not take the old subnet.env for its readiness.
  await unlink(n.subnetFile).catch(() => {});
}

export interface HttpReply { status: number; body: string }

/** GET `url` from inside namespace `ns` (node's fetch; status 0 when it fails). */
export async function httpGet(tb: Testbed, ns: string, url: string): Promise<HttpReply> {
  const js = `fetch(${JSON.stringify(url)}).then(async r=>{console.log(JSON.stringify({status:r.status,body:await r.text()}))},`
    + 'e=>{console.log(JSON.stringify({status:0,body:String(e)}))})';
  const r = await tb.run(ns, [process.execPath, '-e', js], { timeoutMs: 10_000 });
  return JSON.parse(r.stdout) as HttpReply;
}
