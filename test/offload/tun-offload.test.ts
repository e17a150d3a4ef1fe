import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { needsRoot } from '../helpers/root.js';
import { createNetns, deleteNetns, runInNetns } from '../native/netns.js';
import { TUN_F_TSO4, TUN_F_USO4 } from '../../src/offload/vnet.js';

const CHILD = fileURLToPath(new URL('./child-offload.js', import.meta.url));
let ns = '';

before(() => { if (process.getuid?.() === 0) ns = createNetns('wt-offl'); });
after(() => { if (ns !== '') deleteNetns(ns); });

test('kernel TCP through an offloading TUN: TSO reads split into valid segments', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{
    handshake: boolean; reads: number; gsoReads: number; maxGso: number; maxRead: number;
    segments: number; bad: number; splitErr: number; refused: number[][]; stride: number; contiguous: number;
    same: boolean;
  }>(ns, CHILD, ['tso'], 20_000);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.handshake, 'handshake');
  assert.ok(r.gsoReads > 0, 'the kernel handed us TSO super-packets');
  assert.ok(r.maxGso > 0 && r.maxRead > 1500);
  assert.equal(r.splitErr, 0, `reads the split refused, [reason, length, gso type]: ${JSON.stringify(r.refused)}`);
  assert.equal(r.bad, 0, 'every segment ≤ maxPktLen with valid checksums');
  assert.ok(r.stride <= 1400);
  assert.ok(r.contiguous >= 150_000, 'the transfer made progress on our ACKs');
  assert.ok(r.same, 'the bytes reassemble to what the client wrote');
});

test('probeTunOffload: offloads accepted, merged TCP and UDP writes delivered, TUN removed', (t) => {
  if (!needsRoot(t)) return;
  const r = runInNetns<{ accepted: number; tcpMerge: boolean; udpMerge: boolean; detail: string;
    ms: number; leftover: boolean }>(ns, CHILD, ['probe'], 15_000);
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.accepted & TUN_F_TSO4, r.detail);
  assert.ok(r.tcpMerge, r.detail);
  if (r.accepted & TUN_F_USO4) assert.ok(r.udpMerge, r.detail);
  assert.ok(r.ms < 1000, `probe took ${r.ms} ms`);
  assert.equal(r.leftover, false, 'the probe TUN is gone');
});
