import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord } from '../../manager/deployments/model.ts';
import { formatTable, toCells } from './table.ts';
import { deploymentListRows, deploymentUse, updateReportText } from './deployments.ts';

const now = new Date().toISOString();
const dep = (name: string, versions: number, maintenance = false): DeploymentRecord => ({
  name, appliance: 'wiki', applianceVersion: '1.0', version: versions, createdAt: now, updatedAt: now,
  versions: Array.from({ length: versions }, (_, i) => ({ version: i + 1, sha256: String(i + 1).repeat(64), size: 1024, createdAt: now, via: i ? 'files' : 'create', changed: [], changedCount: 0 })),
  ...(maintenance ? { maintenance: { instance: `${name}-maint`, from: versions, startedAt: now } } : {}),
});

test('deploymentUse: the instances on each deployment (any version), by the rule deployment remove refuses on', () => {
  const insts = [
    { name: 'web2', appliance: 'deployment:corp' },
    { name: 'web1', appliance: 'deployment:corp' },
    { name: 'plain', appliance: 'wiki' },
    { name: 'corp-maint', appliance: 'maintenance:corp' },
    { name: 'other', appliance: 'deployment:corporate' },
  ];
  const [corp, test2] = deploymentUse([dep('corp', 3), dep('test', 1)], insts);
  assert.deepEqual(corp!.instances, ['web1', 'web2']);
  assert.deepEqual(test2!.instances, []);
  assert.equal(corp!.versions.length, 3, 'the record is kept whole');
});

test('deploymentListRows: name, appliance, version, versions kept, instances using it; wide names them', () => {
  const rows = deploymentUse([dep('corp', 3, true), dep('test', 1)], [{ name: 'web1', appliance: 'deployment:corp' }, { name: 'web2', appliance: 'deployment:corp' }]);
  const table = formatTable(toCells(deploymentListRows, rows, false));
  assert.match(table, /^NAME\s+APPLIANCE\s+VERSION\s+VERSIONS\s+INSTANCES\s+LAYER\s+UPDATED\s+MAINTENANCE$/m);
  assert.match(table, /^corp\s+wiki@1\.0\s+3\s+3\s+2\s+333333333333\s+\d+s\s+corp-maint \(from 3\)$/m);
  assert.match(table, /^test\s+wiki@1\.0\s+1\s+1\s+0\s+111111111111\s+\d+s\s+-$/m);
  assert.match(formatTable(toCells(deploymentListRows, rows, true)), /USED BY[\s\S]*web1,web2/);
  assert.equal(deploymentListRows.name(rows[0]!), 'corp');
});

test('updateReportText: the version, the counts and the canary, then who was updated and why any failed', () => {
  assert.equal(updateReportText({ appliance: 'deployment:corp', to: '2', canary: 'w1', updated: ['w1', 'w2'], failed: [{ instance: 'w3', error: 'w3 reported failed after the update: db down' }] }),
    'deployment:corp → 2: 2 updated, 1 failed (canary w1)\n  updated: w1, w2\n  failed:  w3: w3 reported failed after the update: db down\n');
  assert.equal(updateReportText({ appliance: 'wiki', to: '1.1', updated: [], failed: [] }), 'wiki@1.1: nothing to update (every instance has it)\n');
});
