import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cgroupHealth } from './host-info.ts';

test('cgroupHealth: favordynmods on cgroup2 is healthy, its absence a note with the remount, no cgroup2 no item, junk ignored', () => {
  const v1 = 'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n';
  assert.equal(cgroupHealth(v1), undefined);
  assert.equal(cgroupHealth(''), undefined);
  assert.equal(cgroupHealth('garbage\n\n  cgroup2\n'), undefined);
  assert.equal(cgroupHealth(`${v1}cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate,favordynmods 0 0\n`)?.status, 'healthy');
  const slow = cgroupHealth(`${v1}cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime,nsdelegate 0 0\n`);
  assert.equal(slow?.status, 'undetected');
  assert.match(slow!.reason, /\/sys\/fs\/cgroup\/unified is mounted without favordynmods/);
  assert.match(slow!.fix!, /mount -o remount,rw,relatime,nsdelegate,favordynmods \/sys\/fs\/cgroup\/unified/);
});
