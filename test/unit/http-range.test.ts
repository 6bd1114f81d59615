import test from 'ava';
import { parseRange } from '../../firmware/protocols/http-boot/range.ts';

const cases: [string | undefined, number, ReturnType<typeof parseRange>][] = [
  [undefined, 100, { kind: 'none' }],
  ['bytes=0-9', 100, { kind: 'range', start: 0, end: 9 }],
  ['bytes=90-', 100, { kind: 'range', start: 90, end: 99 }],
  ['bytes=-10', 100, { kind: 'range', start: 90, end: 99 }],
  ['bytes=-1000', 100, { kind: 'range', start: 0, end: 99 }],
  ['bytes=50-1000', 100, { kind: 'range', start: 50, end: 99 }],
  ['BYTES=0-0', 100, { kind: 'range', start: 0, end: 0 }],
  ['bytes=100-', 100, { kind: 'unsatisfiable' }],
  ['bytes=200-300', 100, { kind: 'unsatisfiable' }],
  ['bytes=-0', 100, { kind: 'unsatisfiable' }],
  ['bytes=0-', 0, { kind: 'unsatisfiable' }],
  ['bytes=99999999999999999999-', 100, { kind: 'unsatisfiable' }],
  ['bytes=9-3', 100, { kind: 'malformed' }],
  ['bytes=-', 100, { kind: 'malformed' }],
  ['bytes=a-b', 100, { kind: 'malformed' }],
  ['items=0-9', 100, { kind: 'malformed' }],
  ['bytes=0-9,20-29', 100, { kind: 'none' }],
  ['bytes=0-9,x', 100, { kind: 'malformed' }],
  ['', 100, { kind: 'malformed' }],
];

for (const [h, size, want] of cases) {
  test(`Range ${JSON.stringify(h)} of ${size} bytes`, (t) => {
    t.deepEqual(parseRange(h, size), want);
  });
}
