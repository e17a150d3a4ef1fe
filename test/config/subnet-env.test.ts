import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatSubnetEnv, parseSubnetEnv, previousPublicIp, previousSubnet, readSubnetEnv, writePublicIpNote, writeSubnetEnv,
} from '../../src/config/subnet-env.js';
import { formatIpv4Prefix, parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';
import { withTmpDir } from '../helpers/tmp.js';

const GOLDEN = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=true\n';

const withTmp = (fn: (dir: string) => Promise<void>): Promise<void> => withTmpDir('weft-subnetenv-', fn);

test('subnet.env: bytes equal flanneld output', () => {
  const text = formatSubnetEnv({ network: parseIpv4Prefix('10.244.0.0/16'), subnet: parseIpv4Prefix('10.244.1.0/24'), mtu: 1472, ipMasq: true });
  assert.equal(text, GOLDEN);
  assert.deepEqual(Buffer.from(text, 'utf8'), Buffer.from(GOLDEN, 'ascii'));
});

test('subnet.env: other values and IPv6 lines in flannel order', () => {
  assert.equal(
    formatSubnetEnv({ network: parseIpv4Prefix('10.5.0.0/16'), subnet: parseIpv4Prefix('10.5.0.64/26'), mtu: 1450, ipMasq: false }),
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.0.65/26\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
  );
  assert.equal(
    formatSubnetEnv({
      network: parseIpv4Prefix('10.244.0.0/16'),
      subnet: parseIpv4Prefix('10.244.1.0/24'),
      mtu: 1450,
      ipMasq: true,
      ipv6Network: 'FD00:10:244:0::/56',
      ipv6Subnet: 'fd00:10:244:1::/64',
    }),
    'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
  );
  assert.throws(() => formatSubnetEnv({ network: parseIpv4Prefix('10.0.0.0/8'), subnet: parseIpv4Prefix('10.0.1.0/24'), mtu: 0, ipMasq: false }), /FLANNEL_MTU/);
});

test('writeSubnetEnv: atomic, 0644 file, 0755 dirs, no temp left, readback', async () => {
  await withTmp(async (dir) => {
    const old = process.umask(0o077); // must not leak into the modes
    try {
      const path = join(dir, 'run', 'flannel', 'subnet.env');
      await writeSubnetEnv(path, GOLDEN);
      assert.equal(await readFile(path, 'utf8'), GOLDEN);
      assert.equal((await stat(path)).mode & 0o777, 0o644);
      assert.equal((await stat(join(dir, 'run'))).mode & 0o777, 0o755);
      assert.equal((await stat(join(dir, 'run', 'flannel'))).mode & 0o777, 0o755);
      assert.deepEqual(await readdir(join(dir, 'run', 'flannel')), ['subnet.env']);

      // Overwrite: replaced, not appended; still one file.
      const next = GOLDEN.replace('10.244.1.1/24', '10.244.2.1/24');
      await writeSubnetEnv(path, next);
      assert.equal(await readFile(path, 'utf8'), next);
      assert.deepEqual(await readdir(join(dir, 'run', 'flannel')), ['subnet.env']);
      assert.deepEqual(await readSubnetEnv(path), {
        FLANNEL_NETWORK: '10.244.0.0/16',
        FLANNEL_SUBNET: '10.244.2.1/24',
        FLANNEL_MTU: '1472',
        FLANNEL_IPMASQ: 'true',
      });
      const prev = await previousSubnet(path);
      assert.ok(prev !== null);
      assert.equal(formatIpv4Prefix(prev), '10.244.2.0/24');
    } finally {
      process.umask(old);
    }
  });
});

test('writeSubnetEnv: failure leaves no temp file', async () => {
  await withTmp(async (dir) => {
    // The target is a directory, so rename fails after the temp file exists.
    const path = join(dir, 'subnet.env');
    await mkdir(join(path, 'inner'), { recursive: true });
    await assert.rejects(writeSubnetEnv(path, GOLDEN));
    assert.deepEqual(await readdir(dir), ['subnet.env']);
  });
});

test('readSubnetEnv / previousSubnet: missing, comments, garbage', async () => {
  await withTmp(async (dir) => {
    const path = join(dir, 'subnet.env');
    assert.equal(await readSubnetEnv(path), null);
    assert.equal(await previousSubnet(path), null);
    await writeFile(path, '# written by hand\n\nexport FLANNEL_NETWORK="10.1.0.0/16"\r\n  FLANNEL_SUBNET = 10.1.7.1/24  \nnot a pair\nFLANNEL_IPMASQ=\'false\'\n');
    assert.deepEqual(await readSubnetEnv(path), { FLANNEL_NETWORK: '10.1.0.0/16', FLANNEL_SUBNET: '10.1.7.1/24', FLANNEL_IPMASQ: 'false' });
    const prev = await previousSubnet(path);
    assert.ok(prev !== null);
    assert.equal(formatIpv4Prefix(prev), '10.1.7.0/24');
    await writeFile(path, 'FLANNEL_SUBNET=banana\n');
    assert.equal(await previousSubnet(path), null);
    await writeFile(path, 'FLANNEL_NETWORK=10.1.0.0/16\n');
    assert.equal(await previousSubnet(path), null);
  });
  assert.deepEqual(parseSubnetEnv(GOLDEN), { FLANNEL_NETWORK: '10.244.0.0/16', FLANNEL_SUBNET: '10.244.1.1/24', FLANNEL_MTU: '1472', FLANNEL_IPMASQ: 'true' });
});

test('publicip note: written beside subnet.env, read back only for the subnet it was written with', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-note-'));
  try {
    const env = join(dir, 'subnet.env');
    const subnet = parseIpv4Prefix('10.244.7.0/24');
    assert.equal(await previousPublicIp(env, subnet), null, 'no note yet');
    await writePublicIpNote(env, subnet, parseIpv4('192.168.1.5'));
    assert.equal(await readFile(`${env}.publicip`, 'utf8'), '10.244.7.0/24 192.168.1.5\n');
    assert.equal(await previousPublicIp(env, subnet), parseIpv4('192.168.1.5'));
    assert.equal(await previousPublicIp(env, parseIpv4Prefix('10.244.8.0/24')), null, 'another subnet: not ours to claim');
    assert.equal(await previousPublicIp(env, null), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
