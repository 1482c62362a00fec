import { test } from 'node:test';
import assert from 'node:assert/strict';
import ssh2 from 'ssh2';
import { findKey, parseAuthorizedKeys } from './authorized-keys.ts';

const k1 = ssh2.utils.generateKeyPairSync('ed25519').public;
const k2 = ssh2.utils.generateKeyPairSync('ed25519').public;
const blob = (pub: string) => Buffer.from(pub.split(' ')[1]!, 'base64');

test('keys, comments, storm-readonly and no-pty options', () => {
  const { keys, warnings } = parseAuthorizedKeys(`# admins\n${k1} alice@laptop\n\nstorm-readonly,no-pty ${k2} auditor\r\n`);
  assert.deepEqual(warnings, []);
  assert.equal(keys.length, 2);
  assert.equal(keys[0]!.comment, 'alice@laptop');
  assert.equal(keys[0]!.readOnly, false);
  assert.equal(keys[1]!.readOnly, true);
  assert.equal(keys[1]!.noPty, true);
  assert.equal(findKey(keys, blob(k2))?.comment, 'auditor');
  assert.equal(findKey(keys, Buffer.from('nope')), undefined);
});

test('unsupported options skip the key rather than grant more than intended', () => {
  const { keys, warnings } = parseAuthorizedKeys(`from="10.0.0.1",storm-readonly ${k1}\ncommand="echo hi" ${k2}\n`);
  assert.equal(keys.length, 0);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /line 1: option "from=.*not supported/);
});

test('hostile lines: garbage, wrong type, bad base64, mismatched blob, unterminated quote, huge', () => {
  const text = [
    'garbage',
    'ssh-ed25519',
    'ssh-ed25519 !!!notbase64',
    `ssh-rsa ${k1.split(' ')[1]}`,
    'no-pty,"unterminated ssh-ed25519 AAAA',
    `ssh-ed25519 ${'A'.repeat(20_000)}`,
    'ssh-ed25519 AAAA',
    k1,
  ].join('\n');
  const { keys, warnings } = parseAuthorizedKeys(text);
  assert.equal(keys.length, 1);
  assert.equal(keys[0]!.line, 8);
  assert.equal(warnings.length, 7);
  const big = parseAuthorizedKeys('#'.repeat(2 << 20));
  assert.equal(big.keys.length, 0);
  assert.match(big.warnings[0]!, /larger than/);
});
