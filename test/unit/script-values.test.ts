import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import { count, grubQuote, isSafeToken, menuKey, text, token } from '../../firmware/policy/script-values.ts';

/** input → shown text */
const TEXT: [string, string][] = [
  ['HPC-NODE001 (52:54:00:77:00:11)', 'HPC-NODE001 (52:54:00:77:00:11)'],
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  ['a ${x} b', 'a __x_ b'],
  ['one\ntwo\r\nthree\tfour', 'one two three four'],
  ['a ; b || c && d', 'a _ b __ c __ d'],
  ['#comment', '_comment'],
  ['back\\slash "dq" `bt`', 'back_slash _dq_ _bt_'],
  ["it's", "it's"],
  ['-n hello --x', '_n hello _-x'],
  ['a-b', 'a-b'],
  ['  padded  ', 'padded'],
  ['Ünïcode ☃', '_n_code _'],
  ['\u0000\u001b[31m', '___31m'],
];

for (const [input, shown] of TEXT) {
  test(`text ${JSON.stringify(input)}`, (t) => {
    t.is(text(input), shown);
  });
}

test('text is cut to 200 characters', (t) => {
  t.is(text('x'.repeat(500)).length, 200);
});

/** value → accepted as a token */
const TOKENS: [string, boolean][] = [
  ['http://10.77.0.1/boot/52:54:00:77:00:11.ipxe?attempt=2', true],
  ['console=ttyS0,115200n8', true],
  ['bootbox.url=http://[fd00::1]:8080/x', true],
  ['user@host', true],
  ['a%20b', true],
  ['a b', false],
  ['-opt', false],
  ['a$b', false],
  ['a{b}', false],
  ['a;b', false],
  ['a|b', false],
  ['a&b', false],
  ['a#b', false],
  ["a'b", false],
  ['a"b', false],
  ['a\\b', false],
  ['a\nb', false],
  ['', false],
  ['é', false],
];

for (const [value, ok] of TOKENS) {
  test(`token ${JSON.stringify(value)} ${ok ? 'accepted' : 'refused'}`, (t) => {
    t.is(isSafeToken(value), ok);
    if (ok) t.is(token(value, 'x'), value);
    else t.throws(() => token(value, 'kernel parameter'), { instanceOf: BootboxError, message: /^kernel parameter / });
  });
}

test('random input: text() only ever yields the display set; token() only ever passes the token set', (t) => {
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 5000; i++) {
    const len = rnd() % 40;
    let s = '';
    for (let j = 0; j < len; j++) s += String.fromCharCode(rnd() % 3 === 0 ? rnd() % 0x3000 : rnd() % 128);
    t.true(/^[A-Za-z0-9 .,:()/_+=@?!%'-]*$/.test(text(s)), JSON.stringify(s));
    t.false(/(^| )-/.test(text(s)), JSON.stringify(s));
    if (isSafeToken(s)) t.true(/^[A-Za-z0-9._~:/?=%+,@[\]][A-Za-z0-9._~:/?=%+,@[\]-]*$/.test(s));
  }
});

test('grubQuote closes, escapes and reopens a quote', (t) => {
  t.is(grubQuote('plain'), "'plain'");
  t.is(grubQuote("it's"), "'it'\\''s'");
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  t.is(grubQuote('$x ${y}'), "'$x ${y}'");
});

test('menu keys and counts', (t) => {
  t.is(menuKey('deploy-1'), 'deploy-1');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  for (const bad of ['', '-x', 'a b', 'x'.repeat(33), '${x}'])
    t.throws(() => menuKey(bad), { instanceOf: BootboxError });
  t.is(count(10, 'n'), '10');
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 86_401]) {
    t.throws(() => count(bad, 'n'), { instanceOf: BootboxError });
  }
});
