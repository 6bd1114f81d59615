import test from 'ava';
import { assertValid, parseQuery, type Schema, validate } from '../../firmware/api/validate.ts';
import { BootboxError } from '../../firmware/core/errors.ts';

const REIMAGE: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { type: 'string', enum: ['next-boot', 'wipe'] },
    image: { type: 'string', maxLength: 8 },
    count: { type: 'integer', minimum: 1, maximum: 10 },
    force: { type: 'boolean' },
    group: { type: ['string', 'null'], pattern: '^[a-z]{1,4}$' },
    tags: { type: 'array', items: { type: 'string', minLength: 2 }, maxItems: 3 },
    nested: {
      type: 'object',
      additionalProperties: false,
      properties: { level: { type: 'string', enum: ['a', 'b'] } },
      required: ['level'],
    },
  },
  required: ['mode'],
};

test('a conforming value has no issues', (t) => {
  t.deepEqual(
    validate(REIMAGE, {
      mode: 'wipe',
      image: 'rocky-9',
      count: 10,
      force: false,
      group: null,
      tags: ['ab', 'cd'],
      nested: { level: 'a' },
    }),
    [],
  );
  t.deepEqual(validate(REIMAGE, { mode: 'next-boot', group: 'rack' }), []);
});

const bad: [string, unknown, string, RegExp][] = [
  ['not an object', [1], '', /must be an object \(got a list\)/],
  ['no body at all', undefined, '', /must be an object \(got nothing\)/],
  ['required field missing', {}, 'mode', /is required/],
  ['value outside the enum', { mode: 'sometime' }, 'mode', /must be one of "next-boot", "wipe" \(got "sometime"\)/],
  ['wrong type', { mode: 5 }, 'mode', /must be a string \(got 5\)/],
  ['string too long', { mode: 'wipe', image: 'a-very-long-name' }, 'image', /at most 8 characters/],
  ['integer below minimum', { mode: 'wipe', count: 0 }, 'count', /at least 1 \(got 0\)/],
  ['integer above maximum', { mode: 'wipe', count: 11 }, 'count', /at most 10 \(got 11\)/],
  ['fraction for an integer', { mode: 'wipe', count: 1.5 }, 'count', /must be an integer/],
  ['string for a boolean', { mode: 'wipe', force: 'yes' }, 'force', /must be a boolean/],
  ['pattern mismatch', { mode: 'wipe', group: 'RACK1' }, 'group', /wrong form/],
  ['nullable given a number', { mode: 'wipe', group: 3 }, 'group', /must be a string or null/],
  ['too many items', { mode: 'wipe', tags: ['aa', 'bb', 'cc', 'dd'] }, 'tags', /at most 3 items/],
  ['bad item', { mode: 'wipe', tags: ['aa', 'b'] }, 'tags[1]', /at least 2 characters/],
  ['nested required', { mode: 'wipe', nested: {} }, 'nested.level', /is required/],
  ['nested enum', { mode: 'wipe', nested: { level: 'c' } }, 'nested.level', /must be one of/],
];

for (const [name, value, field, message] of bad) {
  test(`refused: ${name} (names "${field}")`, (t) => {
    const issues = validate(REIMAGE, value);
    t.true(issues.length >= 1, JSON.stringify(issues));
    t.is(issues[0]!.field, field);
    t.regex(issues[0]!.message, message);
  });
}

test('unknown fields are refused by name when additionalProperties is false', (t) => {
  const issues = validate(REIMAGE, { mode: 'wipe', colour: 'red', nested: { level: 'a', x: 1 } });
  t.deepEqual(
    issues.map((i) => [i.field, i.unknownField]),
    [
      ['colour', true],
      ['nested.x', true],
    ],
  );
  const e = t.throws(() => assertValid(REIMAGE, { mode: 'wipe', colour: 'red' }), { instanceOf: BootboxError });
  t.is(e!.code, 'INVALID_REQUEST');
  t.regex(e!.message, /^unknown field "colour"$/);
});

test('assertValid names the first field and counts the rest', (t) => {
  const e = t.throws(() => assertValid(REIMAGE, { mode: 'x', count: 99 }), { instanceOf: BootboxError });
  t.regex(e!.message, /^"mode" must be one of .* \(and 1 more\)$/);
  t.is((e!.details!.issues as unknown[]).length, 2);
  t.notThrows(() => assertValid(REIMAGE, { mode: 'wipe' }));
});

test('string lengths count characters, not UTF-16 units', (t) => {
  const s: Schema = { type: 'string', maxLength: 3 };
  t.deepEqual(validate(s, '😀😀😀'), []);
  t.is(validate(s, '😀😀😀😀').length, 1);
});

test('a hostile, deeply nested value is refused without a stack overflow', (t) => {
  let deep: Schema = { type: 'object', properties: {} };
  const root = deep;
  for (let i = 0; i < 100; i++) {
    const next: Schema = { type: 'object', properties: {} };
    deep.properties = { a: next };
    deep = next;
  }
  let v: Record<string, unknown> = {};
  const value = v;
  for (let i = 0; i < 100; i++) {
    const n = {};
    v.a = n;
    v = n;
  }
  const issues = validate(root, value);
  t.is(issues.length, 1);
  t.regex(issues[0]!.message, /nested too deeply/);
});

test('query parameters are converted from text, then checked', (t) => {
  const schemas: Record<string, Schema> = {
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    via: { type: 'string', enum: ['mqtt', 'api'] },
    full: { type: 'boolean' },
  };
  t.deepEqual(parseQuery(schemas, new URLSearchParams('limit=20&via=api&full=true&other=x')), {
    values: { limit: 20, via: 'api', full: true },
    issues: [],
  });
  const tooMany = parseQuery(schemas, new URLSearchParams('limit=5000'));
  t.is(tooMany.issues[0]!.field, 'limit');
  t.regex(tooMany.issues[0]!.message, /at most 1000/);
  t.is(parseQuery(schemas, new URLSearchParams('limit=ten')).issues[0]!.field, 'limit');
  t.is(parseQuery(schemas, new URLSearchParams('limit=2.5')).issues[0]!.field, 'limit');
  t.is(parseQuery(schemas, new URLSearchParams('via=smtp')).issues[0]!.field, 'via');
});
