import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { foreignOnPort, parseProcNetUdp } from '../../src/conn/port-owners.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

// /proc/net/udp as Linux 6.18 prints it (format checked against a socat bound to 127.0.0.1:8285: 0100007F:205D): a weft socket on 192.168.100.1:8285, a socat on 0.0.0.0:8285, a vxlan device's kernel socket on 8472.
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  101: 0164A8C0:205D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4711 2 0000000000000000 0
  102: 00000000:205D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4712 2 0000000000000000 0
  103: 00000000:2118 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0000000000000000 0
  104: 0264A8C0:205D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4713 2 0000000000000000 0
`;

test('parseProcNetUdp: little-endian hex address, port, inode', () => {
  assert.deepEqual(parseProcNetUdp(UDP).slice(0, 3), [
    { addr: parseIpv4('192.168.100.1'), port: 8285, inode: 4711 },
    { addr: 0, port: 8285, inode: 4712 },
    { addr: 0, port: 8472, inode: 0 },
  ]);
});

test('foreignOnPort: sockets on our port (our address or any) but not ours, with their holders; another address is no conflict', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-proc-'));
  try {
    mkdirSync(join(root, 'net'));
    writeFileSync(join(root, 'net', 'udp'), UDP);
    mkdirSync(join(root, '321', 'fd'), { recursive: true });
    writeFileSync(join(root, '321', 'comm'), 'socat\n');
    symlinkSync('socket:[4712]', join(root, '321', 'fd', '5'));
    symlinkSync('/dev/null', join(root, '321', 'fd', '0'));
    const me = parseIpv4('192.168.100.1');
    assert.deepEqual(foreignOnPort(8285, me, new Set([4711]), root), ['0.0.0.0:8285 (pid 321 (socat))']);
    assert.deepEqual(foreignOnPort(8285, me, new Set([4711, 4712]), root), [], '192.168.100.2:8285 does not share our datagrams');
    assert.deepEqual(foreignOnPort(8472, me, new Set(), root), ['0.0.0.0:8472 (a kernel socket: a vxlan device, or flanneld\'s)']);
    assert.deepEqual(foreignOnPort(8285, parseIpv4('192.168.100.2'), new Set([4712]), root),
      ['192.168.100.2:8285 (socket inode 4713, held by a process not visible here)']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
