import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startHealthServer } from '../../src/control/health.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

test('port 0 is off', async () => {
  assert.equal(await startHealthServer({ host: '127.0.0.1', port: 0, notReady: () => null, notLive: () => null, metrics: async () => '' }), null);
});

test('/healthz 200 then 503 with the reason, /readyz 503 with the reason then 200, /metrics with the Prometheus content type, 404 and 405', async () => {
  let ready = false;
  let live = true;
  const port = await freePort();
  const srv = await startHealthServer({
    host: '127.0.0.1', port, notReady: () => (ready ? null : 'no lease yet'), notLive: () => (live ? null : 'no worker has forwarded for 12 s'),
    metrics: async () => '# HELP weft_x x\n# TYPE weft_x gauge\nweft_x 1\n',
  });
  assert.ok(srv);
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(await h.text(), 'ok\n');
    const r1 = await fetch(`${base}/readyz`);
    assert.equal(r1.status, 503);
    assert.equal(await r1.text(), 'not ready: no lease yet\n');
    ready = true;
    const r2 = await fetch(`${base}/readyz`);
    assert.equal(r2.status, 200);
    await r2.text();
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(await m.text(), /^weft_x 1$/m);
    live = false;
    const h2 = await fetch(`${base}/healthz`);
    assert.equal(h2.status, 503);
    assert.equal(await h2.text(), 'unhealthy: no worker has forwarded for 12 s\n');
    const nf = await fetch(`${base}/nope`);
    assert.equal(nf.status, 404);
    await nf.text();
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  } finally {
    await srv.close();
  }
});

test('a failing metrics source is a 500, not a crash', async () => {
  const srv = await startHealthServer({
    host: '127.0.0.1', port: await freePort(), notReady: () => null, notLive: () => null, metrics: async () => { throw new Error('boom'); },
  });
  try {
    const m = await fetch(`http://127.0.0.1:${srv!.port}/metrics`);
    assert.equal(m.status, 500);
    assert.match(await m.text(), /boom/);
  } finally {
    await srv!.close();
  }
});

test('port in use → WeftError naming the port and --healthz-port', async () => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as AddressInfo).port;
  try {
    await assert.rejects(
      startHealthServer({ host: '127.0.0.1', port, notReady: () => null, notLive: () => null, metrics: async () => '' }),
      (e: Error & { code?: string }) => e.code === 'EADDRINUSE' && e.message.includes(String(port))
        && e.message.includes('--healthz-port'),
    );
  } finally {
    await new Promise<void>((r) => holder.close(() => r()));
  }
});

test('an address not on this host → message naming --healthz-ip', async () => {
  await assert.rejects(
    startHealthServer({ host: '192.0.2.77', port: await freePort(), notReady: () => null, notLive: () => null, metrics: async () => '' }),
    (e: Error & { code?: string }) => e.code === 'EADDRNOTAVAIL' && e.message.includes('--healthz-ip'),
  );
});
