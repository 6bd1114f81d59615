import test from 'ava';
import { BootboxError } from '../../firmware/core/errors.ts';
import type { Machine } from '../../firmware/domain/machine.ts';
import {
  checkXml,
  parseTemplate,
  renderTemplate,
  type Template,
  UNATTEND_VARIABLES,
  type UnattendValues,
  unattendValues,
  type VariableName,
  WINDOWS_ENVIRONMENT_VARIABLES,
} from '../../firmware/images/unattend.ts';
import { rng } from '../helpers/rng.ts';

const xml = (text: string): Template => parseTemplate(text, { format: 'xml', source: 'test.xml' });
const ini = (text: string): Template => parseTemplate(text, { format: 'ini', source: 'sysprep.inf' });

const ALL: Required<UnattendValues> = {
  MACHINENAME: 'HPC-NODE007',
  MACHINEDOMAIN: 'cluster.example.com',
  ORGNAME: 'Example Lab',
  TIMEZONE: 'W. Europe Standard Time',
  MAC: '52:54:00:77:00:11',
  IP: '10.77.0.50',
  BOXURL: 'http://10.77.0.1',
  IMAGE: 'win11-hpc',
};

function refusal(t: import('ava').ExecutionContext, fn: () => unknown, code: string): BootboxError {
  const e = t.throws(fn);
  t.true(e instanceof BootboxError, String(e));
  t.is((e as BootboxError).code, code as BootboxError['code']);
  return e as BootboxError;
}

/**
 * An independent tag-balance check for rendered output: every tag name closes in order, no
 * raw `<` or `&` is left outside markup and references, and there is one root.
 */
function tagsBalance(doc: string): boolean {
  const body = doc.replace(/^\uFEFF?<\?xml[^?]*\?>/, '').replace(/<!--[\s\S]*?-->/g, '');
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(body); m; m = tag.exec(body)) {
    const between = body.slice(last, m.index);
    if (/[<>]/.test(between) || /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(between)) return false;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(m[3] ?? '')) return false;
    last = tag.lastIndex;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else if (!m[4]) {
      if (stack.length === 0) roots++;
      stack.push(m[2]!);
    } else if (stack.length === 0) roots++;
  }
  return stack.length === 0 && roots === 1 && body.slice(last).trim() === '';
}

// ---------------------------------------------------------------------------------------------
// The variable table

test('the table has the WDS variables and the box ones, each described', (t) => {
  t.deepEqual(Object.keys(UNATTEND_VARIABLES).sort(), Object.keys(ALL).sort());
  for (const n of ['MACHINENAME', 'MACHINEDOMAIN', 'ORGNAME', 'TIMEZONE'] as const) {
    t.is(UNATTEND_VARIABLES[n].origin, 'wds', n);
  }
  for (const n of ['MAC', 'IP', 'BOXURL', 'IMAGE'] as const) t.is(UNATTEND_VARIABLES[n].origin, 'bootbox', n);
  for (const [n, v] of Object.entries(UNATTEND_VARIABLES)) {
    t.true(v.description.length > 10, n);
    t.true(v.whenMissing.length > 5, n);
  }
});

for (const name of Object.keys(ALL) as VariableName[]) {
  test(`%${name}% is filled in (XML text, XML attribute, INI value)`, (t) => {
    const x = xml(`<a v="%${name}%">[%${name}%]</a>`);
    t.deepEqual(x.variables, [name]);
    const value = ALL[name];
    const esc = value.replace(/&/g, '&amp;');
    t.is(renderTemplate(x, { [name]: value }), `<a v="${esc}">[${esc}]</a>`);
    const i = ini(`[S]\nk=%${name}%\n`);
    const want = /\s/.test(value) ? `"${value}"` : value;
    t.is(renderTemplate(i, { [name]: value }), `[S]\nk=${want}\n`);
  });
}

test('variable names are case-insensitive, like Windows environment variables', (t) => {
  const tpl = xml('<a>%MachineName%.%machinedomain%</a>');
  t.deepEqual(tpl.variables, ['MACHINENAME', 'MACHINEDOMAIN']);
  t.is(renderTemplate(tpl, ALL), '<a>HPC-NODE007.cluster.example.com</a>');
});

// ---------------------------------------------------------------------------------------------
// XML escaping

test('a machine name with <script>&"\' comes out escaped in text and attributes', (t) => {
  const tpl = xml('<x><ComputerName>%MACHINENAME%</ComputerName><y name="%MACHINENAME%" o=\'%ORGNAME%\'/></x>');
  const out = renderTemplate(tpl, { MACHINENAME: '<script>&"\'', ORGNAME: 'O\'Brien & "Sons"' });
  t.is(
    out,
    '<x><ComputerName>&lt;script&gt;&amp;&quot;&apos;</ComputerName>' +
      '<y name="&lt;script&gt;&amp;&quot;&apos;" o=\'O&apos;Brien &amp; &quot;Sons&quot;\'/></x>',
  );
  t.notThrows(() => checkXml(out));
  t.true(tagsBalance(out));
});

test('an XML value that already looks escaped is escaped again (no double meaning)', (t) => {
  t.is(renderTemplate(xml('<a>%ORGNAME%</a>'), { ORGNAME: '&amp;' }), '<a>&amp;amp;</a>');
});

test('CR, LF and tab survive an attribute as character references', (t) => {
  const out = renderTemplate(xml('<a b="%ORGNAME%">%ORGNAME%</a>'), { ORGNAME: 'x\r\ny\tz' });
  t.is(out, '<a b="x&#13;&#10;y&#9;z">x&#13;\ny\tz</a>');
});

test('an XML value with a control character XML cannot carry is refused', (t) => {
  const e = refusal(t, () => renderTemplate(xml('<a>%ORGNAME%</a>'), { ORGNAME: 'bad\u0001' }), 'UNSAFE_SCRIPT_VALUE');
  t.regex(e.message, /%ORGNAME%/);
});

// ---------------------------------------------------------------------------------------------
// Unknown variables, `%` rules and Windows environment references

test('an unknown variable is refused with its name and line', (t) => {
  const e = refusal(t, () => xml('<a>\n  <b>ok</b>\n  <c>%MACHINNAME%</c>\n</a>'), 'INVALID_TEMPLATE');
  t.regex(e.message, /test\.xml line 3/);
  t.regex(e.message, /%MACHINNAME%/);
  t.regex(e.message, /%%MACHINNAME%%/); // says how to keep it as text
  t.is(e.details?.line, 3);
  t.is(e.details?.variable, 'MACHINNAME');
  const i = refusal(t, () => ini('[UserData]\nOrgName=%ORGNAME%\nFullName=%FULLNAME%\n'), 'INVALID_TEMPLATE');
  t.regex(i.message, /sysprep\.inf line 3: unknown variable %FULLNAME%/);
});

test('%% is one literal %, so %%Name%% keeps %Name% as text', (t) => {
  const tpl = xml('<a>100%% and %%FOO%% and %%MACHINENAME%% and %MACHINENAME%%%</a>');
  t.deepEqual(tpl.variables, ['MACHINENAME']);
  t.is(renderTemplate(tpl, ALL), '<a>100% and %FOO% and %MACHINENAME% and HPC-NODE007%</a>');
  t.is(renderTemplate(ini('[S]\nk=50%%\n'), {}), '[S]\nk=50%\n');
});

test('a % that opens no %Name% is kept: 100%, %20, %1, %~dp0, URL percent-encoding', (t) => {
  const src = '<a>100% done, a%20b, %1 %~dp0 caf%C3%A9 %E2%80%99 50 % off</a>';
  const tpl = xml(src);
  t.deepEqual(tpl.variables, []);
  t.is(renderTemplate(tpl, {}), src);
});

test('Windows environment references pass through unchanged, in any case', (t) => {
  const src =
    '<a>%WINDIR%\\System32 %SystemRoot% %windir% %ProgramFiles(x86)% %SYSTEMDRIVE% %TEMP% %configsetroot% %ComputerName% %MACHINENAME%</a>';
  const tpl = xml(src);
  t.deepEqual(tpl.variables, ['MACHINENAME']);
  t.is(renderTemplate(tpl, ALL), src.replace('%MACHINENAME%', 'HPC-NODE007'));
  for (const v of WINDOWS_ENVIRONMENT_VARIABLES) {
    t.notThrows(() => xml(`<a>%${v}%</a>`), v);
    t.is(renderTemplate(xml(`<a>%${v.toLowerCase()}%</a>`), {}), `<a>%${v.toLowerCase()}%</a>`);
  }
});

test('XML comments are copied as written: nothing in them is substituted or checked', (t) => {
  const src = '<a><!-- %MACHINENAME% %NOT_A_VARIABLE% %% --><b>%MACHINENAME%</b></a>';
  t.is(renderTemplate(xml(src), ALL), '<a><!-- %MACHINENAME% %NOT_A_VARIABLE% %% --><b>HPC-NODE007</b></a>');
});

test('variables where nothing can be escaped are refused: CDATA, tag names, attribute names, PIs', (t) => {
  t.regex(refusal(t, () => xml('<a><![CDATA[%MACHINENAME%]]></a>'), 'INVALID_TEMPLATE').message, /CDATA/);
  t.regex(refusal(t, () => xml('<a><%MACHINENAME%/></a>'), 'INVALID_TEMPLATE').message, /line 1/);
  t.regex(refusal(t, () => xml('<a x%IP%="1"/>'), 'INVALID_TEMPLATE').message, /attribute x in <a> has no ="value"/);
  t.regex(refusal(t, () => xml('<a><?pi %IP%?></a>'), 'INVALID_TEMPLATE').message, /processing instruction/);
  // CDATA without variables is fine and copied as written
  t.is(renderTemplate(xml('<a><![CDATA[x < y & %WINDIR%]]></a>'), {}), '<a><![CDATA[x < y & %WINDIR%]]></a>');
});

// ---------------------------------------------------------------------------------------------
// XML well-formedness (negative fixtures, named by failure)

const NOT_WELL_FORMED: [string, string, RegExp][] = [
  ['mismatched end tag', '<a><b></a>', /<\/a> does not match <b> opened on line 1/],
  ['unclosed element', '<a>\n<b>\n</b>', /<a> is never closed/],
  ['end tag without start', '<a></a></b>', /without a start tag|text after|second root/],
  ['two roots', '<a/><b/>', /second root/],
  ['no root', '<!-- only a comment -->', /no root element/],
  ['plain text', 'ComputerName=X', /text before the root/],
  ['bare ampersand', '<a>R&D</a>', /"&"/],
  ['unknown entity', '<a>&nbsp;</a>', /"&"/],
  ['raw < in attribute', '<a b="x<y"/>', /"<" in the value of attribute b/],
  ['unquoted attribute', '<a b=1/>', /must be in quotes/],
  ['duplicate attribute', '<a b="1" b="2"/>', /appears twice/],
  ['attributes without space', '<a b="1"c="2"/>', /expected whitespace/],
  ['unclosed attribute value', '<a b="1/>', /not closed/],
  ['unclosed comment', '<a><!-- x</a>', /comment <!-- is not closed/],
  ['double hyphen in comment', '<a><!-- x -- y --></a>', /"--"/],
  ['DOCTYPE', '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', /DOCTYPE is not allowed/],
  ['declaration not first', '\n<?xml version="1.0"?><a/>', /must be at the very start/],
  ['declaration without version', '<?xml encoding="utf-8"?><a/>', /version/],
  ['UTF-16 declared', '<?xml version="1.0" encoding="utf-16"?><a/>', /encoding="utf-16".*UTF-8/],
  ['control character', '<a>\u0007</a>', /control character U\+0007/],
  [']]> in text', '<a>x ]]> y</a>', /"]]>"/],
  ['lone <', '<a>1 < 2</a>', /does not start a tag/],
  ['unclosed start tag', '<a', /not closed/],
];

for (const [name, src, why] of NOT_WELL_FORMED) {
  test(`XML refused: ${name}`, (t) => {
    const e = refusal(t, () => xml(src), 'INVALID_TEMPLATE');
    t.regex(e.message, why);
    t.regex(e.message, /^unattend template test\.xml line \d+: /);
  });
}

test('the line of an XML error is the line of the fault', (t) => {
  const e = refusal(t, () => xml('<?xml version="1.0"?>\n<a>\n\n  <b>\n  </c>\n</a>'), 'INVALID_TEMPLATE');
  t.is(e.details?.line, 5);
});

test('well-formed XML with declaration, BOM, PI, comments, references and namespaces is accepted as is', (t) => {
  const src =
    '\uFEFF<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!-- top -->\n<?custom data?>\n' +
    '<u:a xmlns:u="urn:x" xml:lang=\'en\'>&lt;&#65;&#x42;&amp;<b/><c d="&quot;">t</c></u:a>\n<!-- end -->\n';
  t.is(renderTemplate(xml(src), {}), src);
});

// ---------------------------------------------------------------------------------------------
// A real-looking answer file

const AUTOUNATTEND = `<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <settings pass="windowsPE">
    <component name="Microsoft-Windows-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <DiskConfiguration>
        <Disk wcm:action="add">
          <DiskID>0</DiskID>
          <WillWipeDisk>true</WillWipeDisk>
          <CreatePartitions>
            <CreatePartition wcm:action="add"><Order>1</Order><Type>EFI</Type><Size>100</Size></CreatePartition>
            <CreatePartition wcm:action="add"><Order>2</Order><Type>MSR</Type><Size>16</Size></CreatePartition>
            <CreatePartition wcm:action="add"><Order>3</Order><Type>Primary</Type><Extend>true</Extend></CreatePartition>
          </CreatePartitions>
        </Disk>
      </DiskConfiguration>
      <UserData>
        <AcceptEula>true</AcceptEula>
        <Organization>%ORGNAME%</Organization>
      </UserData>
      <!-- the image the box deploys: %IMAGE% would be substituted outside this comment -->
    </component>
  </settings>
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <ComputerName>%MACHINENAME%</ComputerName>
      <RegisteredOrganization>%ORGNAME%</RegisteredOrganization>
      <TimeZone>%TIMEZONE%</TimeZone>
    </component>
    <component name="Microsoft-Windows-UnattendedJoin" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <Identification>
        <JoinDomain>%MACHINEDOMAIN%</JoinDomain>
      </Identification>
    </component>
    <component name="Microsoft-Windows-Deployment" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <RunSynchronous>
        <RunSynchronousCommand wcm:action="add">
          <Order>1</Order>
          <Path>cmd /c echo %MAC% %IP% &gt; %SystemRoot%\\bootbox-node.txt</Path>
        </RunSynchronousCommand>
        <RunSynchronousCommand wcm:action="add">
          <Order>2</Order>
          <Path>powershell -c "Invoke-WebRequest -Uri '%BOXURL%/api/v1/nodes/%MAC%/report' -Method Post -Body '{}'"</Path>
        </RunSynchronousCommand>
      </RunSynchronous>
    </component>
  </settings>
</unattend>
`;

test('a real-looking autounattend.xml renders to well-formed XML with the machine values', (t) => {
  const tpl = xml(AUTOUNATTEND);
  t.deepEqual([...tpl.variables].sort(), [
    'BOXURL',
    'IP',
    'MAC',
    'MACHINEDOMAIN',
    'MACHINENAME',
    'ORGNAME',
    'TIMEZONE',
  ]);
  const values = { ...ALL, ORGNAME: 'R&D <Lab>' };
  const out = renderTemplate(tpl, values);
  t.notThrows(() => checkXml(out, 'rendered'));
  t.true(tagsBalance(out));
  t.regex(out, /<ComputerName>HPC-NODE007<\/ComputerName>/);
  t.regex(out, /<JoinDomain>cluster\.example\.com<\/JoinDomain>/);
  t.regex(out, /<TimeZone>W\. Europe Standard Time<\/TimeZone>/);
  t.regex(out, /<Organization>R&amp;D &lt;Lab&gt;<\/Organization>/);
  t.regex(out, /echo 52:54:00:77:00:11 10\.77\.0\.50 &gt; %SystemRoot%\\bootbox-node\.txt/);
  t.regex(out, /'http:\/\/10\.77\.0\.1\/api\/v1\/nodes\/52:54:00:77:00:11\/report'/);
  t.regex(out, /%IMAGE% would be substituted outside this comment/);
  t.false(/%(MACHINENAME|MACHINEDOMAIN|ORGNAME|TIMEZONE|MAC|IP|BOXURL)%/.test(out));
});

test('the independent tag check does catch broken output (the check can fail)', (t) => {
  t.false(tagsBalance('<a><b></a></b>'));
  t.false(tagsBalance('<a>R&D</a>'));
  t.false(tagsBalance('<a/><b/>'));
  t.true(tagsBalance('<a x="1"><b/>t</a>'));
});

// ---------------------------------------------------------------------------------------------
// INI (sysprep.inf)

const SYSPREP = [
  ';SetupMgrTag',
  '[Unattended]',
  '    OemSkipEula=Yes',
  '',
  '[GuiUnattended]',
  '    TimeZone=%TIMEZONE%',
  '    OemSkipWelcome=1',
  '',
  '[UserData]',
  '    FullName="Administrator of %ORGNAME%"',
  '    OrgName=%ORGNAME%',
  '    ComputerName=%MACHINENAME% ; from the naming policy',
  '',
  '[Identification]',
  '    JoinDomain=%MACHINEDOMAIN%',
  '',
].join('\r\n');

test('a sysprep.inf renders with INF quoting and keeps CRLF line ends and comments', (t) => {
  const tpl = ini(SYSPREP);
  const out = renderTemplate(tpl, { ...ALL, TIMEZONE: '110', ORGNAME: 'Example "Big" Lab' });
  t.is(
    out,
    [
      ';SetupMgrTag',
      '[Unattended]',
      '    OemSkipEula=Yes',
      '',
      '[GuiUnattended]',
      '    TimeZone=110',
      '    OemSkipWelcome=1',
      '',
      '[UserData]',
      '    FullName="Administrator of Example ""Big"" Lab"',
      '    OrgName="Example ""Big"" Lab"',
      '    ComputerName=HPC-NODE007 ; from the naming policy',
      '',
      '[Identification]',
      '    JoinDomain=cluster.example.com',
      '',
    ].join('\r\n'),
  );
});

test('INI values: spaces, ";" and "," are quoted; plain values are not', (t) => {
  const tpl = ini('[S]\na=%ORGNAME%\n');
  t.is(renderTemplate(tpl, { ORGNAME: 'Lab' }), '[S]\na=Lab\n');
  t.is(renderTemplate(tpl, { ORGNAME: 'My Lab' }), '[S]\na="My Lab"\n');
  t.is(renderTemplate(tpl, { ORGNAME: 'a;b' }), '[S]\na="a;b"\n');
  t.is(renderTemplate(tpl, { ORGNAME: 'a,b' }), '[S]\na="a,b"\n');
});

test('INI values with CR, LF or another control character are refused', (t) => {
  const tpl = ini('[S]\na=%ORGNAME%\n');
  for (const bad of ['x\r\n[Evil]\nk=v', 'x\ny', 'x\ry', 'x\u0000', 'x\u001b[1m', 'x\u007f', 'x\u2028y']) {
    const e = refusal(t, () => renderTemplate(tpl, { ORGNAME: bad }), 'UNSAFE_SCRIPT_VALUE');
    t.regex(e.message, /%ORGNAME%/);
  }
  // a quoted position is no exception
  refusal(t, () => renderTemplate(ini('[S]\na="%ORGNAME%"\n'), { ORGNAME: 'x\ny' }), 'UNSAFE_SCRIPT_VALUE');
});

const BAD_INI: [string, string, RegExp][] = [
  ['key before the first section', 'k=v\n[S]\n', /line 1: k=… comes before the first \[Section\]/],
  ['line that is not key=value', '[S]\njust words\n', /line 2: .*neither \[Section\], key=value nor a ; comment/],
  ['empty key', '[S]\n=v\n', /line 2/],
  ['malformed section', '[S\nk=v\n', /line 1: malformed section header/],
  ['unclosed quote', '[S]\nk="abc\n', /line 2: the value of k has an unclosed " quote/],
  ['variable in a key', '[S]\n%MACHINENAME%=1\n', /line 2: %MACHINENAME% cannot be used in a key/],
  ['variable in a section name', '[%IMAGE%]\n', /line 1: %IMAGE% cannot be used in a section name/],
];

for (const [name, src, why] of BAD_INI) {
  test(`INI refused: ${name}`, (t) => {
    t.regex(refusal(t, () => ini(src), 'INVALID_TEMPLATE').message, why);
  });
}

test('INI: a ; inside quotes is not a comment; after the value it is, and is copied as written', (t) => {
  const tpl = ini('[S]\na="x;%IP%" ; %NOT_CHECKED% here\n');
  t.deepEqual(tpl.variables, ['IP']);
  t.is(renderTemplate(tpl, ALL), '[S]\na="x;10.77.0.50" ; %NOT_CHECKED% here\n');
});

// ---------------------------------------------------------------------------------------------
// Missing values

test('a used variable without a value is an error naming it; unused ones may be missing', (t) => {
  const tpl = xml('<a>\n<b>%MACHINENAME%</b>\n<c>%MACHINEDOMAIN%</c></a>');
  const e = refusal(t, () => renderTemplate(tpl, { MACHINENAME: 'N1' }), 'UNATTEND_VALUE_MISSING');
  t.regex(e.message, /%MACHINEDOMAIN% \(first on line 3\)/);
  t.regex(e.message, /set the box's domain/);
  t.deepEqual(e.details?.variables, ['MACHINEDOMAIN']);
  const empty = refusal(
    t,
    () => renderTemplate(tpl, { MACHINENAME: '', MACHINEDOMAIN: 'd' }),
    'UNATTEND_VALUE_MISSING',
  );
  t.regex(empty.message, /%MACHINENAME%/);
  t.is(renderTemplate(xml('<a>%IP%</a>'), { IP: '10.0.0.9' }), '<a>10.0.0.9</a>');
});

// ---------------------------------------------------------------------------------------------
// Values from a machine record and the box settings

const MACHINE: Machine = {
  mac: '52:54:00:77:00:11',
  arch: 'uefi-x64',
  firmware: 'uefi',
  name: 'HPC-NODE007',
  ip: '10.77.0.50',
  firstSeen: '2025-01-01T00:00:00.000Z',
  lastSeen: '2025-01-01T00:00:00.000Z',
  state: 'deploying',
  stateSince: '2025-01-01T00:00:00.000Z',
  stateReason: 'deploy started',
  image: 'win11-hpc',
  bootCount: 1,
};
const BOX = {
  domain: 'cluster.example.com',
  orgName: 'Example Lab',
  timezone: 'W. Europe Standard Time',
  boxUrl: 'http://10.77.0.1',
};

test('unattendValues takes the name, MAC, IP and image from the machine and the rest from the box', (t) => {
  t.deepEqual(unattendValues(MACHINE, BOX), ALL);
});

test('unattendValues: an outstanding reimage image wins, an explicit image wins over both', (t) => {
  const m: Machine = {
    ...MACHINE,
    state: 'reimage-requested',
    reimage: { from: 'deployed', mode: 'next-boot', image: 'win11-new', requestedAt: MACHINE.lastSeen },
  };
  t.is(unattendValues(m, BOX).IMAGE, 'win11-new');
  t.is(unattendValues(m, BOX, 'chosen').IMAGE, 'chosen');
});

test('unattendValues leaves out what is not known, and rendering then names it', (t) => {
  const { name: _n, ip: _i, image: _img, ...bare } = MACHINE;
  const v = unattendValues(bare, { boxUrl: 'http://10.77.0.1' });
  t.deepEqual(v, { MAC: MACHINE.mac, BOXURL: 'http://10.77.0.1' });
  const e = refusal(t, () => renderTemplate(xml('<a>%MACHINENAME%</a>'), v), 'UNATTEND_VALUE_MISSING');
  t.regex(e.message, /name the machine/);
});

// ---------------------------------------------------------------------------------------------
// Garbage in

test('random input only ever yields INVALID_TEMPLATE (or a template)', (t) => {
  const next = rng(0x5eed);
  const alphabet = '<>/="\'&;%[]!?-abcXYZ \n\r\t\u0001é';
  for (let n = 0; n < 3000; n++) {
    const len = Math.floor(next() * 60);
    let s = '';
    for (let k = 0; k < len; k++) s += alphabet[Math.floor(next() * alphabet.length)];
    for (const format of ['xml', 'ini'] as const) {
      try {
        const tpl = parseTemplate(s, { format });
        renderTemplate(tpl, ALL);
      } catch (e) {
        if (!(e instanceof BootboxError) || e.code !== 'INVALID_TEMPLATE') {
          t.fail(`seed 0x5eed case ${n} ${format} ${JSON.stringify(s)}: ${String(e)}`);
          return;
        }
      }
    }
  }
  t.pass();
});
