import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import {
  hostNameProblem,
  macForName,
  type NamingPattern,
  nextName,
  parseNamingPattern,
  renderName,
  validateManualName,
} from '../../firmware/policy/naming.ts';

const MAC = '52:54:00:ab:cd:ef';

function parse(p: string): NamingPattern {
  const r = parseNamingPattern(p);
  if (r instanceof BootboxError) throw new Error(`${p}: ${r.message}`);
  return r;
}

/** pattern → names for counters 1, 2, 42, 999 (MAC = 52:54:00:ab:cd:ef) */
const RENDER: [pattern: string, names: [string, string, string, string]][] = [
  ['HPC-NODE%03#', ['HPC-NODE001', 'HPC-NODE002', 'HPC-NODE042', 'HPC-NODE999']],
  ['node%#', ['node1', 'node2', 'node42', 'node999']],
  ['N%3#', ['N1', 'N2', 'N42', 'N999']],
  ['N%05#-X', ['N00001-X', 'N00002-X', 'N00042-X', 'N00999-X']],
  ['PC%MAC', ['PC525400ABCDEF', 'PC525400ABCDEF', 'PC525400ABCDEF', 'PC525400ABCDEF']],
  ['pc%mac', ['pc525400ABCDEF', 'pc525400ABCDEF', 'pc525400ABCDEF', 'pc525400ABCDEF']],
  ['PC%6MAC%02#', ['PC52540001', 'PC52540002', 'PC52540042', 'PC52540099']],
  ['X%014MAC', ['X00525400ABCDEF', 'X00525400ABCDEF', 'X00525400ABCDEF', 'X00525400ABCDEF']],
  ['R%2#a', ['R1a', 'R2a', 'R42a', 'R99a']],
];

for (const [pattern, names] of RENDER) {
  test(`renders ${pattern}`, (t) => {
    const p = parse(pattern);
    t.deepEqual(
      [1, 2, 42, 999].map((c) => renderName(p, c, MAC)),
      names,
    );
  });
}

/** pattern → 1-based position and a fragment of the message */
const BAD: [pattern: string, position: number, message: RegExp][] = [
  ['', 0, /empty/],
  ['HPC NODE%#', 4, /" " cannot be part of a host name/],
  ['HPC_NODE%#', 4, /"_" cannot be part of a host name/],
  ['N%%%#', 2, /'%' \(from %%\) cannot be part of a host name/],
  ['N%0#', 2, /'%0' must be followed by a length/],
  ['N%00#', 2, /length 0 must be from 1 to 15/],
  ['N%16#', 2, /length 16 must be from 1 to 15/],
  ['N%#%#', 4, /only one counter/],
  ['N%USERNAME%#', 2, /%Username is a WDS variable about the user/],
  ['%3First%02#', 1, /%First is a WDS variable/],
  ['%3Last%02#', 1, /%Last is a WDS variable/],
  ['N%X', 2, /unknown variable after '%' at "X"/],
  ['N%', 2, /'%' at the end/],
  ['NODE', 1, /needs a counter/],
  ['HPC-NODE%08#', 1, /names can be 16 characters long; .* at most 15/],
  ['HPC-%MAC', 1, /names can be 16 characters long/],
  ['%03#', 1, /no letter, so some names would be all digits/],
  ['%MAC', 1, /no letter/],
  ['-N%#', 1, /cannot start with '-'/],
  ['N%#-', 4, /cannot end with '-'/],
  ['NÖDE%#', 2, /"Ö" cannot be part/],
];

for (const [pattern, position, message] of BAD) {
  test(`refuses ${JSON.stringify(pattern)}`, (t) => {
    const r = parseNamingPattern(pattern);
    if (!(r instanceof BootboxError)) return t.fail('parsed');
    t.is(r.code, 'INVALID_NAMING_PATTERN');
    t.is(r.httpStatus, 400);
    t.regex(r.message, message);
    if (position > 0) {
      t.is(r.details?.position, position);
      t.true(r.message.includes(`position ${position}:`), r.message);
    }
  });
}

test('the seed cluster pattern names nodes in order', (t) => {
  const p = parse('HPC-NODE%03#');
  const taken = new Set<string>();
  let counter = 1;
  const names: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = nextName(p, taken, counter);
    if (r instanceof BootboxError) return t.fail(r.message);
    names.push(r.name);
    taken.add(r.name);
    counter = r.counter + 1;
  }
  t.deepEqual(names, ['HPC-NODE001', 'HPC-NODE002', 'HPC-NODE003', 'HPC-NODE004', 'HPC-NODE005']);
});

test('taken names are skipped, case-insensitively, never reused', (t) => {
  const p = parse('HPC-NODE%03#');
  const taken = new Set(['HPC-NODE001', 'hpc-node002', 'Hpc-Node004']);
  t.deepEqual(nextName(p, taken, 1), { name: 'HPC-NODE003', counter: 3 });
  t.deepEqual(nextName(p, taken, 4), { name: 'HPC-NODE005', counter: 5 });
});

test('a width-3 counter stops at 999 instead of trimming 1000 to a name already given', (t) => {
  const p = parse('N%03#');
  t.deepEqual(nextName(p, new Set(), 999), { name: 'N999', counter: 999 });
  const r = nextName(p, new Set(['N999']), 998 + 1);
  if (!(r instanceof BootboxError)) return t.fail();
  t.is(r.code, 'NAMES_EXHAUSTED');
  t.regex(r.message, /no free name from counter 999 on: its counter stops at 999/);
  const all = new Set(Array.from({ length: 999 }, (_, i) => `N${String(i + 1).padStart(3, '0')}`));
  t.like(nextName(p, all, 1), { code: 'NAMES_EXHAUSTED' });
});

test('an unbounded counter ends when names outgrow 15 characters', (t) => {
  const p = parse('ABCDEFGHIJKLM%#');
  t.deepEqual(nextName(p, new Set(), 99), { name: 'ABCDEFGHIJKLM99', counter: 99 });
  t.like(nextName(p, new Set(), 100), { code: 'NAMES_EXHAUSTED' });
});

test('a %MAC pattern without a counter gives one name per MAC, and says so when it is taken', (t) => {
  const p = parse('PC%MAC');
  t.deepEqual(nextName(p, new Set(), 1, MAC), { name: 'PC525400ABCDEF', counter: 1 });
  const r = nextName(p, new Set(['pc525400abcdef']), 1, MAC);
  if (!(r instanceof BootboxError)) return t.fail();
  t.is(r.code, 'NAMES_EXHAUSTED');
  t.like(nextName(p, new Set(), 1), { code: 'INVALID_REQUEST' }, 'the MAC is required');
});

test('a bad counter start is refused', (t) => {
  const p = parse('N%#');
  t.like(nextName(p, new Set(), -1), { code: 'INVALID_REQUEST' });
  t.like(nextName(p, new Set(), 1.5), { code: 'INVALID_REQUEST' });
  t.deepEqual(nextName(p, new Set(), 0), { name: 'N0', counter: 0 });
});

test('500 machines in a burst get 500 different names', (t) => {
  const p = parse('HPC-NODE%03#');
  const taken = new Set<string>();
  let counter = 1;
  for (let i = 0; i < 500; i++) {
    const r = nextName(p, taken, counter);
    if (r instanceof BootboxError) return t.fail(r.message);
    taken.add(r.name);
    counter = r.counter + 1;
  }
  t.is(taken.size, 500);
  t.true(taken.has('HPC-NODE500'));
});

test('MAC for names: 12 upper-case hex digits, no separators', (t) => {
  t.is(macForName('52:54:00:ab:cd:ef'), '525400ABCDEF');
  t.is(macForName('52-54-00-AB-CD-EF'), '525400ABCDEF');
});

/** name → problem (undefined = valid) */
const NAMES: [string, RegExp | undefined][] = [
  ['HPC-NODE001', undefined],
  ['a', undefined],
  ['ABCDEFGHIJKLMNO', undefined],
  ['ABCDEFGHIJKLMNOP', /16 characters long/],
  ['', /empty/],
  ['node 1', /" " at position 5/],
  ['node$1', /"\$" at position 5/],
  ['node{1}', /"\{" at position 5/],
  ['node\n1', /"\\n" at position 5/],
  ['node.lab', /"\." at position 5/],
  ['-node', /cannot start or end with '-'/],
  ['node-', /cannot start or end with '-'/],
  ['12345', /all digits/],
];

for (const [name, problem] of NAMES) {
  test(`host name ${JSON.stringify(name)}: ${problem ? 'invalid' : 'valid'}`, (t) => {
    const p = hostNameProblem(name);
    if (problem === undefined) t.is(p, undefined);
    else t.regex(p ?? '', problem);
  });
}

test('validateManualName: a valid free name is accepted as given', (t) => {
  t.is(validateManualName('web-01', new Set(['HPC-NODE001'])), 'web-01');
});

test('validateManualName: a name in use is NAME_IN_USE, whatever its case', (t) => {
  const r = validateManualName('hpc-node001', new Set(['HPC-NODE001']));
  if (!(r instanceof BootboxError)) return t.fail();
  t.is(r.code, 'NAME_IN_USE');
  t.is(r.httpStatus, 409);
  t.is(r.message, 'machine name hpc-node001 is already in use (as HPC-NODE001; names ignore case)');
  const same = validateManualName('HPC-NODE001', new Set(['HPC-NODE001']));
  t.like(same, { code: 'NAME_IN_USE', message: 'machine name HPC-NODE001 is already in use' });
});

test('validateManualName: keeping its own name (in another case) is not a conflict', (t) => {
  t.is(validateManualName('hpc-node001', new Set(['HPC-NODE001']), 'HPC-NODE001'), 'hpc-node001');
});

test('validateManualName: an invalid name is INVALID_NAME with the reason', (t) => {
  const r = validateManualName('node $(reboot)', new Set());
  if (!(r instanceof BootboxError)) return t.fail();
  t.is(r.code, 'INVALID_NAME');
  t.is(r.httpStatus, 400);
  t.regex(r.message, /machine name "node \$\(reboot\)" is not valid: " " at position 5 is not allowed/);
});

test('nextName takes a lookup by name key instead of a set (a large registry is not copied per call)', (t) => {
  const p = parseNamingPattern('NODE%03#') as Exclude<ReturnType<typeof parseNamingPattern>, BootboxError>;
  const inUse = new Set(['NODE001', 'NODE002']);
  const asked: string[] = [];
  const r = nextName(p, (k) => {
    asked.push(k);
    return inUse.has(k);
  });
  t.deepEqual(r, { name: 'NODE003', counter: 3 });
  t.deepEqual(asked, ['NODE001', 'NODE002', 'NODE003']);
  t.deepEqual(
    nextName(p, (k) => k === 'NODE001'),
    { name: 'NODE002', counter: 2 },
  );
});
