import test from 'ava';
import {
  equalSecrets,
  hashPassword,
  isPasswordHash,
  parsePasswordHash,
  verifyPassword,
} from '../../firmware/core/password.ts';

// RFC 7914 §12, second test vector: scrypt(P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64).
const RFC7914_VECTOR = Buffer.from(
  'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640',
  'hex',
);

test('verification is real scrypt: the RFC 7914 test vector matches', async (t) => {
  const stored = `scrypt$1024$8$16$${Buffer.from('NaCl').toString('base64url')}$${RFC7914_VECTOR.toString('base64url')}`;
  t.true(await verifyPassword(stored, 'password'));
  t.false(await verifyPassword(stored, 'Password'));
});

test('a made hash has the scrypt$N$r$p$salt$hash form, verifies, and is salted', async (t) => {
  const h = hashPassword('s3cret', { N: 1024 });
  t.regex(h, /^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  t.true(isPasswordHash(h));
  t.true(await verifyPassword(h, 's3cret'));
  t.true(await verifyPassword(h, Buffer.from('s3cret')));
  t.false(await verifyPassword(h, 's3cret '));
  t.false(await verifyPassword(h, ''));
  t.not(hashPassword('s3cret', { N: 1024 }), h, 'a fresh salt each time');
});

test('the default cost is N=2^14, r=8, p=1', (t) => {
  const p = parsePasswordHash(hashPassword('x'));
  t.like(p, { N: 16384, r: 8, p: 1 });
  t.is(p?.salt.length, 16);
  t.is(p?.hash.length, 32);
});

test('plain passwords compare exactly', async (t) => {
  t.false(isPasswordHash('hunter2'));
  t.true(await verifyPassword('hunter2', 'hunter2'));
  t.false(await verifyPassword('hunter2', 'hunter'));
  t.false(await verifyPassword('hunter2', 'hunter22'));
  t.false(await verifyPassword('', 'x'));
});

test('malformed or out-of-bounds hashes never match and never throw', async (t) => {
  const salt = Buffer.alloc(16, 1).toString('base64url');
  const key = Buffer.alloc(32, 2).toString('base64url');
  for (const bad of [
    'scrypt$',
    'scrypt$1024$8$1$salt',
    `scrypt$1000$8$1$${salt}$${key}`, // N not a power of two
    `scrypt$1$8$1$${salt}$${key}`,
    `scrypt$${2 ** 21}$8$1$${salt}$${key}`, // too costly
    `scrypt$1024$0$1$${salt}$${key}`,
    `scrypt$1024$8$99$${salt}$${key}`,
    `scrypt$1024$8$1$${salt}$AAAA`, // hash too short
    `scrypt$1024$8$1$${salt}$${key}$extra`,
  ]) {
    t.is(parsePasswordHash(bad), undefined, bad);
    t.false(await verifyPassword(bad, 'anything'), bad);
  }
});

test('equalSecrets', (t) => {
  t.true(equalSecrets(Buffer.from('abc'), Buffer.from('abc')));
  t.false(equalSecrets(Buffer.from('abc'), Buffer.from('abd')));
  t.false(equalSecrets(Buffer.from('abc'), Buffer.from('abcd')));
  t.true(equalSecrets(Buffer.alloc(0), Buffer.alloc(0)));
});
