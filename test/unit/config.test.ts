import test from 'ava';
import { FLAG_OF_KEY, parseCommand } from '../../firmware/cli/args.ts';
import { resolveConfig } from '../../firmware/config/load.ts';
import { checkConfig, defaultConfig } from '../../firmware/config/schema.ts';
import { BootboxError } from '../../firmware/core/errors.ts';

const fromFile = (obj: unknown) => () =>
  resolveConfig({ configFile: 'box.json', readFile: () => (typeof obj === 'string' ? obj : JSON.stringify(obj)) });

test('a full valid config file is accepted and merged over the defaults', (t) => {
  const c = resolveConfig({
    configFile: 'box.json',
    readFile: () =>
      JSON.stringify({
        privateInterface: 'eth1',
        uplinkInterface: 'eth0',
        dataDir: '/srv/bootbox',
        imagesDir: '/media/bootbox/BOOTBOX',
        bootDir: '/media/bootbox/BOOTBOX/boot',
        boxId: 'rack7',
        dhcp: { mode: 'proxy', range: '10.0.0.10-10.0.0.200', leaseTime: 7200, router: '10.0.0.1', dns: ['10.0.0.2'] },
        tftp: { port: 6969, singlePort: true, blksizeMax: 1468, windowsizeMax: 32, maxTransfers: 100, maxPerClient: 4 },
        http: { port: 8081 },
        ui: { port: 9090 },
        api: { tokens: ['0123456789abcdef0123'] },
        mqtt: { url: 'mqtts://broker.example:8883', username: 'box', password: 'pw' },
        log: { level: 'debug' },
      }),
  });
  t.is(c.dhcp.mode, 'proxy');
  t.is(c.dhcp.leaseTime, 7200);
  t.deepEqual(c.dhcp.relayNetworks, [], 'defaults kept where the file is silent');
  t.is(c.tftp.windowsizeMax, 32);
  t.is(c.ui.port, 9090);
});

// Every key: one bad value each, and the message names the key.
const badValues: [string, unknown][] = [
  ['privateInterface', 'this-name-is-far-too-long'],
  ['uplinkInterface', 7],
  ['dataDir', ''],
  ['imagesDir', false],
  ['bootDir', []],
  ['boxId', 'has space'],
  ['dhcp.mode', 'maybe'],
  ['dhcp.range', '10.0.0.9-10.0.0.1'],
  ['dhcp.leaseTime', 5],
  ['dhcp.router', '10.0.0'],
  ['dhcp.dns', ['10.0.0.1', 'x']],
  ['dhcp.domain', 3],
  ['dhcp.relayNetworks', ['10.88.0.0/40']],
  ['dhcp.reservations', { 'not-a-mac': '10.0.0.5' }],
  ['tftp.port', 0],
  ['tftp.singlePort', 'yes'],
  ['tftp.blksizeMax', 70000],
  ['tftp.windowsizeMax', 0],
  ['tftp.maxTransfers', -1],
  ['tftp.maxPerClient', 1.5],
  ['tftp.busyPollUs', -1],
  ['http.port', 65536],
  ['ui.port', '8080'],
  ['ui.hostNames', ['bootbox.example', 'http://bootbox']],
  ['ui.tls', 'server.pem'],
  ['api.tokens', ['short']],
  ['mqtt.url', 'http://broker'],
  ['mqtt.username', 1],
  ['mqtt.password', null],
  ['log.level', 'loud'],
  ['ipv6.answerRouterSolicitations', 'yes'],
  ['boot.answer', 'some'],
  ['boot.unknown', 'maybe'],
  ['boot.namingPattern', ''],
  ['boot.uefiX86', 'grub.efi'],
  ['boot.defaultImage', { mips: 'x' }],
  ['boot.groupImages', { 'bad name!': 'x' }],
  ['boot.images', { rocky: { title: 7 } }],
  ['boot.deployEnvironments', { bios: { kernel: 'k' } }],
  ['boot.pollIntervalSec', 0],
  ['boot.pollRetries', 'many'],
  ['boot.onWaitTimeout', 'panic'],
];

for (const [key, value] of badValues) {
  test(`config key ${key}: a bad value is refused with a message naming the key`, (t) => {
    const obj: Record<string, unknown> = {};
    const parts = key.split('.');
    if (parts.length === 1) obj[key] = value;
    else obj[parts[0]!] = { [parts[1]!]: value };
    const err = t.throws(fromFile(obj), { instanceOf: BootboxError });
    t.is(err?.code, 'CONFIG_INVALID');
    t.true(err!.message.includes(`"${key}"`), err!.message);
    t.is(err!.exitCode, 2);
  });
}

test('unknown keys, wrong shapes and unparseable JSON are refused', (t) => {
  t.regex(t.throws(fromFile({ dhcp: { mod: 'full' } }))!.message, /"dhcp.mod" is not a known configuration key/);
  t.regex(t.throws(fromFile({ http: 80 }))!.message, /"http" must be an object/);
  t.regex(t.throws(fromFile('{"dhcp": '))!.message, /not valid JSON/);
  t.regex(t.throws(fromFile([]))!.message, /must be an object/);
  const unreadable = t.throws(
    () =>
      resolveConfig({
        configFile: '/nope.json',
        readFile: () => {
          throw Object.assign(new Error('x'), { code: 'ENOENT' });
        },
      }),
    { instanceOf: BootboxError },
  );
  t.is(unreadable?.code, 'CONFIG_UNREADABLE');
  t.regex(unreadable!.message, /\/nope.json: ENOENT/);
});

test('boot.uefiX86 "shim" and boot.firstStageByVendor: accepted; a bad table is refused naming the key', (t) => {
  const c = fromFile({
    boot: { uefiX86: 'shim', firstStageByVendor: { '52:54:00': 'snponly.efi', '00:1B:21:7': 'x' } },
  });
  t.regex(t.throws(c)!.message, /"boot.firstStageByVendor" key "00:1B:21:7" is not a MAC prefix/);
  const ok = resolveConfig({
    configFile: 'box.json',
    readFile: () =>
      JSON.stringify({
        boot: { uefiX86: 'shim', firstStageByVendor: { '52:54:00': 'snponly.efi', '00:1B:21:77': 'ipxe.efi' } },
      }),
  });
  t.is(ok.boot.uefiX86, 'shim');
  t.deepEqual(ok.boot.firstStageByVendor, { '52:54:00': 'snponly.efi', '00:1B:21:77': 'ipxe.efi' });
  t.deepEqual(defaultConfig().boot.firstStageByVendor, {});
  for (const [table, why] of [
    [{ '52:54': 'shim' }, /key "52:54" is not a MAC prefix of 3 to 5 octets/],
    [{ '52:54:00:00:00:00': 'shim' }, /key "52:54:00:00:00:00" is not a MAC prefix/],
    [{ '52-54-00': 'shim' }, /key "52-54-00" is not a MAC prefix/],
    [{ '52:54:00': 'grub.efi' }, /"52:54:00" must be one of ipxe.efi, snponly.efi, shim \(got "grub.efi"\)/],
    [{ '52:54:0A': 'shim', '52:54:0a': 'ipxe.efi' }, /keys "52:54:0A" and "52:54:0a" are the same MAC prefix/],
    [['52:54:00'], /must be an object/],
  ] as const) {
    const err = t.throws(fromFile({ boot: { firstStageByVendor: table } }), { instanceOf: BootboxError });
    t.regex(err!.message, /"boot.firstStageByVendor"/, JSON.stringify(table));
    t.regex(err!.message, why, JSON.stringify(table));
  }
});

test('cross-field rules', (t) => {
  t.regex(t.throws(fromFile({ privateInterface: 'eth0', uplinkInterface: 'eth0' }))!.message, /uplinkInterface/);
  t.regex(t.throws(fromFile({ http: { port: 8080 } }))!.message, /ui.port/);
});

test('the defaults pass their own schema', (t) => {
  t.deepEqual(checkConfig(defaultConfig()), []);
});

test('serve flags map to config keys and override the file', (t) => {
  const cmd = parseCommand([
    'serve',
    '--config',
    'box.json',
    '--private',
    'eth1',
    '--uplink',
    'eth0',
    '--data',
    '/d',
    '--images',
    '/i',
    '--boot-dir',
    '/b',
    '--dhcp',
    'proxy',
    '--range',
    '10.0.0.10-10.0.0.20',
    '--http-port',
    '8000',
    '--ui-port',
    '8001',
    '--api-token',
    'aaaaaaaaaaaaaaaa1',
    '--api-token',
    'bbbbbbbbbbbbbbbb2',
    '--mqtt',
    'mqtt://127.0.0.1:1883',
  ]);
  if (cmd.cmd !== 'serve') return t.fail();
  t.is(cmd.configFile, 'box.json');
  const c = resolveConfig({
    configFile: 'box.json',
    readFile: () => JSON.stringify({ dhcp: { mode: 'full' }, http: { port: 81 } }),
    overrides: cmd.overrides,
    flagOfKey: FLAG_OF_KEY,
  });
  t.is(c.privateInterface, 'eth1');
  t.is(c.uplinkInterface, 'eth0');
  t.is(c.dataDir, '/d');
  t.is(c.imagesDir, '/i');
  t.is(c.bootDir, '/b');
  t.is(c.dhcp.mode, 'proxy');
  t.is(c.dhcp.range, '10.0.0.10-10.0.0.20');
  t.is(c.http.port, 8000);
  t.is(c.ui.port, 8001);
  t.deepEqual(c.api.tokens, ['aaaaaaaaaaaaaaaa1', 'bbbbbbbbbbbbbbbb2']);
  t.is(c.mqtt.url, 'mqtt://127.0.0.1:1883');
});

test('a bad flag value names the flag', (t) => {
  const cmd = parseCommand(['serve', '--dhcp', 'sometimes']);
  if (cmd.cmd !== 'serve') return t.fail();
  const e = t.throws(() => resolveConfig({ overrides: cmd.overrides, flagOfKey: FLAG_OF_KEY }));
  t.regex(e!.message, /^--dhcp must be one of full, proxy, off, auto/);
  t.regex(
    t.throws(() => parseCommand(['serve', '--http-port', 'eighty']))!.message,
    /^--http-port: must be a whole number/,
  );
  const range = parseCommand(['serve', '--range', '1.2.3']);
  if (range.cmd !== 'serve') return t.fail();
  t.regex(
    t.throws(() => resolveConfig({ overrides: range.overrides, flagOfKey: FLAG_OF_KEY }))!.message,
    /^--range must be a range/,
  );
});

test('CLI parsing: commands and usage errors', (t) => {
  t.deepEqual(parseCommand(['version']), { cmd: 'version' });
  t.is(parseCommand([]).cmd, 'help');
  t.deepEqual(parseCommand(['lab', 'up']), { cmd: 'lab-up', name: 'bootbox', netns: undefined });
  t.deepEqual(parseCommand(['lab', 'down', '--lab', 'x1']), { cmd: 'lab-down', name: 'x1' });
  const node = parseCommand(['lab', 'node', '--firmware', 'uefi', '--name', 'n1']);
  t.like(node, { cmd: 'lab-node', firmware: 'uefi', nodeName: 'n1', name: 'bootbox', memory: 512 });
  t.like(parseCommand(['serve', '--lab']), { cmd: 'serve', lab: true, labName: 'bootbox' });
  const usage = (argv: string[], re: RegExp) => {
    const e = t.throws(() => parseCommand(argv), { instanceOf: BootboxError });
    t.is(e?.code, 'USAGE');
    t.is(e?.exitCode, 2);
    t.regex(e!.message, re);
  };
  usage(['serve', '--bogus'], /unknown option '--bogus'/i);
  usage(['serve', '--private'], /--private/);
  usage(['serve', 'extra'], /positional/);
  usage(['frobnicate'], /unknown command "frobnicate"/);
  usage(['lab', 'node', '--firmware', 'coreboot'], /--firmware/);
  usage(['lab', 'sideways'], /unknown action "sideways"/);
  usage(['lab', 'up', '--lab', 'Bad_Name'], /lab name/);
  usage(['version', 'now'], /no arguments/);
});
