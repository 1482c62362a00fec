import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord } from '../../manager/deployments/model.ts';
import { instanceCreateParams } from '../../manager/services/instances.ts';
import { applianceId, deploymentPrompt, pickDeployment, pickLabel, siteDeployments } from './wizard.ts';

const dep = (name: string, appliance = 'wiki', applianceVersion = '1.0', version = 1) =>
  ({ name, appliance, applianceVersion, version, versions: [], createdAt: '', updatedAt: '' }) as DeploymentRecord;

test('applianceId: the catalog id of any appliance reference', () => {
  assert.equal(applianceId('wiki'), 'wiki');
  assert.equal(applianceId(' wiki@1.0 '), 'wiki');
  assert.equal(applianceId('example/wiki@1.0'), 'wiki');
});

test('siteDeployments: only the appliance\'s, by name; junk rows skipped', () => {
  const list = [dep('zeta'), dep('ops', 'mail'), dep('corp'), null, 'x', { name: 5, appliance: 'wiki' }];
  assert.deepEqual(siteDeployments(list, 'wiki').map((d) => d.name), ['corp', 'zeta']);
  assert.deepEqual(siteDeployments(undefined, 'wiki'), []);
});

test('pickDeployment: empty or the published name keeps the default, a site name picks it, anything else says what there is', () => {
  const site = [dep('corp'), dep('staging')];
  assert.deepEqual(pickDeployment('', site, 'wiki-example-corp'), { kind: 'published' });
  assert.deepEqual(pickDeployment('  ', site), { kind: 'published' });
  assert.deepEqual(pickDeployment('wiki-example-corp', site, 'wiki-example-corp'), { kind: 'published' });
  assert.deepEqual(pickDeployment(' corp ', site, 'wiki-example-corp'), { kind: 'site', deployment: site[0] });
  // A site deployment named like the published layer wins (the default stays one empty line away).
  const clash = [dep('wiki-example-corp')];
  assert.equal((pickDeployment('wiki-example-corp', clash, 'wiki-example-corp') as { kind: string }).kind, 'site');
  assert.equal(pickDeployment('nope', site, 'wiki-example-corp'), 'no deployment "nope" of this appliance (there is: corp, staging, wiki-example-corp (its own)); empty keeps its own');
  assert.equal(pickDeployment('nope', []), 'no deployment "nope" of this appliance; empty keeps its own');
});

test('deploymentPrompt and pickLabel: the default and the choices said; the site deployment named with its version', () => {
  assert.equal(deploymentPrompt('wiki', [dep('corp')], 'wiki-example-corp 1.0'), 'new instance › wiki › deployment (empty: its own, wiki-example-corp 1.0; tab completes: corp): ');
  assert.equal(deploymentPrompt('wiki-classic', []), 'new instance › wiki-classic › deployment (empty: as published; the site has none): ');
  assert.match(deploymentPrompt('wiki', ['a', 'b', 'c', 'd', 'e'].map((n) => dep(n))), /tab completes: a, b, c, d, …\): $/);
  assert.equal(pickLabel({ kind: 'published' }, 'wiki', 'wiki-example-corp 1.0'), 'wiki (deployment wiki-example-corp 1.0)');
  assert.equal(pickLabel({ kind: 'published' }, 'wiki-classic'), 'wiki-classic');
  assert.equal(pickLabel({ kind: 'site', deployment: dep('corp', 'wiki', '1.0', 3) }, 'wiki'), 'wiki@1.0 (site deployment corp version 3)');
});

test('instanceCreateParams: the one request the CLI and the wizard send', () => {
  assert.deepEqual(instanceCreateParams({ name: 'web1', appliance: 'wiki', host: '', params: { a: '1' } }), { name: 'web1', appliance: 'wiki', params: { a: '1' } });
  assert.deepEqual(instanceCreateParams({ name: 'web1', deployment: 'corp', host: 'hv1' }), { name: 'web1', deployment: 'corp', host: 'hv1', params: {} });
  assert.deepEqual(instanceCreateParams({ name: 'web1', appliance: 'wiki', deployment: 'corp' }), { name: 'web1', deployment: 'corp', params: {} }, 'a deployment names its appliance');
});
