import test from 'ava';
import type { TftpOption } from '../../firmware/protocols/tftp/codec.ts';
import type { Negotiated, NegotiationContext } from '../../firmware/protocols/tftp/options.ts';
import {
  blksizeMaxForMtu,
  MSFTWINDOW_GRANT,
  negotiate,
  OPTION_TABLE,
  parseDecimal,
} from '../../firmware/protocols/tftp/options.ts';

const ctx = (over: Partial<NegotiationContext['limits']> = {}, fileSize = 123456): NegotiationContext => ({
  fileSize,
  limits: { blksizeMax: 1468, windowsizeMax: 64, windowBytesMax: 1 << 20, ...over },
});

const opts = (...pairs: [string, string][]): TftpOption[] => pairs.map(([name, value]) => ({ name, value }));

function ok(options: TftpOption[], c = ctx()): Negotiated {
  const r = negotiate(options, c);
  if (r.kind !== 'ok') throw new Error(`refused: ${r.message}`);
  return r.negotiated;
}

test('the option table has one entry per option, in dependency order', (t) => {
  t.deepEqual(
    OPTION_TABLE.map((h) => h.name),
    ['blksize', 'tsize', 'timeout', 'windowsize', 'msftwindow'],
  );
});

test('no options: RFC 1350 defaults and no OACK', (t) => {
  const n = ok([]);
  t.is(n.blksize, 512);
  t.is(n.windowsize, 1);
  t.false(n.msftWindow);
  t.deepEqual(n.oack, []);
});

test('edk2 probe: tsize=0 blksize=1468 windowsize=4 are all granted, tsize is the real size', (t) => {
  const n = ok(opts(['tsize', '0'], ['blksize', '1468'], ['windowsize', '4']), ctx({}, 9_876_543));
  t.deepEqual(n.oack, opts(['tsize', '9876543'], ['blksize', '1468'], ['windowsize', '4']));
  t.is(n.tsize, 9_876_543);
  t.is(n.blksize, 1468);
  t.is(n.windowsize, 4);
});

test('tsize answers the real size whatever number the client sent', (t) => {
  t.deepEqual(ok(opts(['tsize', '77']), ctx({}, 5)).oack, opts(['tsize', '5']));
  t.deepEqual(ok(opts(['tsize', '0']), ctx({}, 0)).oack, opts(['tsize', '0']));
});

test('names are case-insensitive and echoed in the client spelling and order', (t) => {
  const n = ok(opts(['WindowSize', '8'], ['BLKSIZE', '1024'], ['unknown', 'x']));
  t.deepEqual(n.oack, opts(['WindowSize', '8'], ['BLKSIZE', '1024']));
  t.deepEqual(n.ignored, [{ name: 'unknown', value: 'x', reason: 'unknown' }]);
});

test('blksize is clamped to the configured ceiling (MTU - 32 by default)', (t) => {
  t.is(blksizeMaxForMtu(1500), 1468);
  t.is(blksizeMaxForMtu(9000), 8968);
  t.is(blksizeMaxForMtu(65536), 65464);
  t.is(ok(opts(['blksize', '65464'])).blksize, 1468);
  t.deepEqual(ok(opts(['blksize', '65464'])).oack, opts(['blksize', '1468']));
  // allowed larger when configured
  t.is(ok(opts(['blksize', '65464']), ctx({ blksizeMax: 65464 })).blksize, 65464);
  // smaller requests are granted as asked
  t.is(ok(opts(['blksize', '8'])).blksize, 8);
});

test('blksize above 65464 is clamped; below 8 refuses the request (ERROR 8)', (t) => {
  t.is(ok(opts(['blksize', '70000']), ctx({ blksizeMax: 65464 })).blksize, 65464);
  t.is(ok(opts(['blksize', '99999999999999999999']), ctx({ blksizeMax: 65464 })).blksize, 65464);
  const r = negotiate(opts(['blksize', '7']), ctx());
  t.is(r.kind, 'refuse');
  if (r.kind === 'refuse') {
    t.is(r.option, 'blksize');
    t.regex(r.message, /below 8/);
  }
});

test('windowsize is clamped to the configured max and to the window-bytes bound', (t) => {
  t.is(ok(opts(['windowsize', '16'])).windowsize, 16);
  t.is(ok(opts(['windowsize', '65535'])).windowsize, 64);
  t.is(ok(opts(['windowsize', '999999'])).windowsize, 64);
  // 1 MiB / 65464 = 16 slots, whatever order the options came in
  const big = ctx({ blksizeMax: 65464, windowsizeMax: 1000 });
  t.is(ok(opts(['windowsize', '500'], ['blksize', '65464']), big).windowsize, 16);
  t.is(ok(opts(['blksize', '65464'], ['windowsize', '500']), big).windowsize, 16);
});

test('timeout 1..255 is echoed; out of range or garbage is left out of the OACK', (t) => {
  t.is(ok(opts(['timeout', '5'])).timeoutS, 5);
  t.deepEqual(ok(opts(['timeout', '5'])).oack, opts(['timeout', '5']));
  for (const bad of ['0', '256', '-1', 'x', '', ' 5']) {
    const n = ok(opts(['timeout', bad]));
    t.deepEqual(n.oack, [], bad);
    t.is(n.timeoutS, undefined);
    t.is(n.ignored[0]?.reason, /^[0-9]+$/.test(bad) ? 'out-of-range' : 'not-a-number', bad);
  }
});

test('garbage values are ignored option by option', (t) => {
  const n = ok(opts(['blksize', '1k'], ['windowsize', '0'], ['tsize', 'big'], ['windowsize2', '4']));
  t.deepEqual(n.oack, []);
  t.is(n.blksize, 512);
  t.is(n.windowsize, 1);
  t.deepEqual(
    n.ignored.map((i) => `${i.name}:${i.reason}`).sort(),
    ['blksize:not-a-number', 'tsize:not-a-number', 'windowsize2:unknown', 'windowsize:out-of-range'].sort(),
  );
});

test('a duplicated option is ignored in every copy; the others stand', (t) => {
  const n = ok(opts(['blksize', '1024'], ['tsize', '0'], ['BLKSIZE', '1468']));
  t.is(n.blksize, 512);
  t.deepEqual(n.oack, opts(['tsize', '123456']));
  t.deepEqual(
    n.ignored.map((i) => `${i.name}=${i.value}:${i.reason}`),
    ['blksize=1024:duplicate', 'BLKSIZE=1468:duplicate'],
  );
});

test('msftwindow=31416 with windowsize is answered 27182', (t) => {
  const n = ok(opts(['blksize', '1456'], ['windowsize', '64'], ['msftwindow', '31416']));
  t.true(n.msftWindow);
  t.deepEqual(n.oack, opts(['blksize', '1456'], ['windowsize', '64'], ['msftwindow', MSFTWINDOW_GRANT]));
  // the client may send it before windowsize
  t.true(ok(opts(['msftwindow', '31416'], ['windowsize', '4'])).msftWindow);
});

test('msftwindow is ignored without windowsize or with another value', (t) => {
  const alone = ok(opts(['msftwindow', '31416']));
  t.false(alone.msftWindow);
  t.is(alone.ignored[0]?.reason, 'needs-windowsize');
  const other = ok(opts(['windowsize', '4'], ['msftwindow', '27182']));
  t.false(other.msftWindow);
  t.is(other.ignored[0]?.reason, 'unexpected-value');
  t.deepEqual(other.oack, opts(['windowsize', '4']));
});

test('parseDecimal accepts only digits', (t) => {
  t.is(parseDecimal('0'), 0);
  t.is(parseDecimal('000512'), 512);
  t.is(parseDecimal('1e3'), undefined);
  t.is(parseDecimal('+5'), undefined);
  t.is(parseDecimal('5 '), undefined);
  t.is(parseDecimal(''), undefined);
  t.is(parseDecimal('1234567890123456789'), Number.POSITIVE_INFINITY);
});
