/**
 * A TCP transfer of random bytes with SHA-256 on both ends, run inside a
 * pod namespace by the integration tests:
 *   node tcp-sha.js server <port>          → prints {"bytes":n,"sha256":"…"} at EOF
 *   node tcp-sha.js client <host> <port> <bytes> → prints the same for what it sent
 * Bounded: the server exits after one connection or 30 s.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { createServer, connect } from 'node:net';

const [mode, a, b, c] = process.argv.slice(2);
setTimeout(() => { process.stderr.write('tcp-sha: timed out\n'); process.exit(3); }, 30_000).unref();

if (mode === 'server') {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => { h.update(d); bytes += d.length; });
    sock.on('end', () => {
      process.stdout.write(`${JSON.stringify({ bytes, sha256: h.digest('hex') })}\n`);
      sock.end();
      server.close();
    });
  });
  server.listen(Number(a), () => process.stdout.write('listening\n'));
} else if (mode === 'client') {
  const total = Number(c);
  const h = createHash('sha256');
  const sock = connect(Number(b), a!, () => {
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        randomFillSync(chunk, 0, n);
        const piece = Buffer.from(chunk.subarray(0, n));
        h.update(piece);
        sent += n;
        if (!sock.write(piece)) { sock.once('drain', pump); return; }
      }
      sock.end(() => process.stdout.write(`${JSON.stringify({ bytes: sent, sha256: h.digest('hex') })}\n`));
    };
    pump();
  });
  sock.on('error', (e) => { process.stderr.write(`tcp-sha: ${e.message}\n`); process.exit(2); });
} else {
  process.stderr.write('usage: tcp-sha server <port> | client <host> <port> <bytes>\n');
  process.exit(2);
}
