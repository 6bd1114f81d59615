/** `bootbox agent` flags (cli/args.ts) and the agent's own option checks (agent/agent.ts). */
import test from 'ava';
import { checkAgentOptions } from '../../firmware/agent/agent.ts';
import { parseCommand } from '../../firmware/cli/args.ts';
import { BootboxError } from '../../firmware/core/errors.ts';

test('agent: flags parse into the command', (t) => {
  t.deepEqual(parseCommand(['agent', '--mqtt', 'mqtt://box:1883', '--name', 'node-a', '--dry-run']), {
    cmd: 'agent',
    mqtt: 'mqtt://box:1883',
    name: 'node-a',
    dryRun: true,
  });
  t.deepEqual(
    parseCommand([
      'agent',
      '--mqtt',
      'mqtts://box',
      '--name',
      'n',
      '--box',
      'aabbccddeeff',
      '--username',
      'u',
      '--password',
      'p',
      '--ca',
      '/etc/ca.pem',
    ]),
    {
      cmd: 'agent',
      mqtt: 'mqtts://box',
      name: 'n',
      dryRun: false,
      box: 'aabbccddeeff',
      username: 'u',
      password: 'p',
      ca: '/etc/ca.pem',
    },
  );
});

test('agent: missing or bad flags are USAGE errors naming the flag', (t) => {
  const usage = (argv: string[]) => {
    const e = t.throws(() => parseCommand(argv)) as BootboxError;
    t.is(e.code, 'USAGE');
    t.is(e.exitCode, 2);
    return e.message;
  };
  t.regex(usage(['agent', '--name', 'a']), /--mqtt URL is required/);
  t.regex(usage(['agent', '--mqtt', 'mqtt://x']), /--name NAME is required/);
  t.regex(
    usage(['agent', '--mqtt', 'mqtt://x', '--name', 'a', '--password', 'p']),
    /--username and --password go together/,
  );
  t.regex(usage(['agent', '--mqtt', 'mqtt://x', '--name', 'a', '--bogus']), /unknown option '--bogus'/i);
  t.regex(usage(['agent', '--mqtt', 'mqtt://x', '--name', 'a', 'extra']), /unexpected argument "extra"/);
});

test('agent: URL, name and box are checked before connecting', (t) => {
  const bad = (o: Parameters<typeof checkAgentOptions>[0]) => {
    const e = t.throws(() => checkAgentOptions(o)) as BootboxError;
    t.true(e instanceof BootboxError);
    t.is(e.code, 'USAGE');
    return e.message;
  };
  t.regex(bad({ mqtt: 'box:1883', name: 'a' }), /"box:" is not a broker URL scheme/);
  t.regex(bad({ mqtt: 'not a url', name: 'a' }), /--mqtt: "not a url" is not a URL/);
  t.regex(bad({ mqtt: 'http://box', name: 'a' }), /"http:" is not a broker URL scheme/);
  t.regex(bad({ mqtt: 'mqtt://box', name: 'a/+' }), /--name: must be 1-64/);
  t.regex(bad({ mqtt: 'mqtt://box', name: 'a', box: '#' }), /--box: must be 1-64/);
  t.is(checkAgentOptions({ mqtt: 'mqtt://127.0.0.1:1883', name: 'node-a' }).port, '1883');
});
