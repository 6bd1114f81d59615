/** Request schemas of MQTT commands (telemetry/mqtt/command-schemas.ts). */
import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { transactionOf, validateRequest } from '../../firmware/telemetry/mqtt/command-schemas.ts';

const msg = (v: unknown) => (v instanceof BootboxError ? `${v.code}: ${v.message}` : 'accepted');

test('a valid request is typed; confirm defaults to false', (t) => {
  t.deepEqual(validateRequest('reimage', { transaction: 'a', targets: { name: 'n1' }, mode: 'wipe' }), {
    transaction: 'a',
    targets: { name: 'n1' },
    mode: 'wipe',
    confirm: false,
  });
  t.deepEqual(validateRequest('set-image', { transaction: 3, targets: { mac: '52:54:00:00:00:01' }, image: null }), {
    transaction: 3,
    targets: { mac: '52:54:00:00:00:01' },
    image: null,
    confirm: false,
  });
});

test('refusals name the field', (t) => {
  const cases: [Parameters<typeof validateRequest>[0], unknown, string][] = [
    ['approve', { targets: { name: 'x' } }, 'INVALID_REQUEST: request/approve: "transaction" is required'],
    [
      'approve',
      { transaction: '', targets: { name: 'x' } },
      'INVALID_REQUEST: request/approve: "transaction" must be a string of 1-128 characters or an integer',
    ],
    [
      'approve',
      { transaction: 1.5, targets: { name: 'x' } },
      'INVALID_REQUEST: request/approve: "transaction" must be a string of 1-128 characters or an integer',
    ],
    ['approve', { transaction: 1 }, 'INVALID_REQUEST: request/approve: "targets" is required'],
    [
      'approve',
      { transaction: 1, targets: { name: 'x' }, mode: 'wipe' },
      'INVALID_REQUEST: request/approve: unknown field "mode" (approve takes transaction, targets, confirm)',
    ],
    ['reimage', { transaction: 1, targets: { name: 'x' } }, 'INVALID_REQUEST: request/reimage: "mode" is required'],
    [
      'reimage',
      { transaction: 1, targets: { name: 'x' }, mode: 'next-boot', image: 5 },
      'INVALID_REQUEST: request/reimage: "image" must be an image name of 1-128 characters',
    ],
    [
      'reimage',
      { transaction: 1, targets: { name: 'x' }, mode: 'next-boot', confirm: 'yes' },
      'INVALID_REQUEST: request/reimage: "confirm" must be true or false',
    ],
    [
      'set-image',
      { transaction: 1, targets: { name: 'x' } },
      'INVALID_REQUEST: request/set-image: "image" is required',
    ],
    [
      'set-image',
      { transaction: 1, targets: { name: 'x' }, image: '' },
      'INVALID_REQUEST: request/set-image: "image" must be an image name of 1-128 characters, or null',
    ],
    [
      'cancel',
      { transaction: 1, targets: { names: 'x' } },
      'INVALID_REQUEST: request/cancel: "targets.names" must be a list of 1-1024 strings',
    ],
    [
      'cancel',
      null,
      'INVALID_REQUEST: request/cancel: the payload must be a JSON object (transaction, targets, confirm)',
    ],
  ];
  for (const [command, body, expected] of cases) t.is(msg(validateRequest(command, body)), expected);
});

test('transactionOf echoes only a valid transaction', (t) => {
  t.is(transactionOf({ transaction: 'x' }), 'x');
  t.is(transactionOf({ transaction: 7 }), 7);
  t.is(transactionOf({ transaction: { a: 1 } }), undefined);
  t.is(transactionOf({ transaction: 'x'.repeat(129) }), undefined);
  t.is(transactionOf('x'), undefined);
});
