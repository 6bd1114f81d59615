/**
 * `bootbox lab up|down|node`: the virtual private switch a newcomer serves on.
 * The box side of the lab is put in a namespace this test makes (--netns), so the
 * machine running the tests is left as it was.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { Netns, NODE, ROOT, sh, uniqueId, waitForLine } from '../helpers/netns.ts';

const MAIN = path.join(ROOT, 'firmware/main.ts');
const run = (args: string[]) => sh(NODE, [MAIN, ...args]);

test('lab up is idempotent and prints the interface; lab down removes it all', async (t) => {
  const lab = `t${uniqueId()}`;
  const boxNs = new Netns(`bbt-${lab}-box`);
  t.teardown(async () => {
    try {
      run(['lab', 'down', '--lab', lab]);
    } catch {}
    await boxNs.destroy();
  });
  const first = run(['lab', 'up', '--lab', lab, '--netns', boxNs.name]).trim();
  t.is(first, `bbl-${lab}`);
  t.regex(boxNs.ip('-4', '-o', 'addr', 'show', 'dev', first), /10\.77\.0\.1\/24/);
  t.regex(sh('ip', ['-n', `bblab-${lab}`, 'link', 'show', 'master', 'br0']), /p0/);
  const second = run(['lab', 'up', '--lab', lab, '--netns', boxNs.name]).trim();
  t.is(second, first, 'same answer the second time');
  t.is(boxNs.ip('-4', '-o', 'addr', 'show', 'dev', first).trim().split('\n').length, 1, 'no duplicate address');
  run(['lab', 'down', '--lab', lab]);
  t.false(existsSync(`/run/netns/bblab-${lab}`));
  t.throws(() => boxNs.ip('link', 'show', 'dev', first), undefined, 'the box port went with the switch');
});

test('lab node starts a QEMU PXE node on the lab switch with its console on stdout', async (t) => {
  const lab = `t${uniqueId()}`;
  const boxNs = new Netns(`bbt-${lab}-box`);
  t.teardown(async () => {
    try {
      run(['lab', 'down', '--lab', lab]);
    } catch {}
    await boxNs.destroy();
  });
  run(['lab', 'up', '--lab', lab, '--netns', boxNs.name]);
  const node = spawn(NODE, [MAIN, 'lab', 'node', '--lab', lab, '--name', 'n1', '--firmware', 'bios'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => node.kill('SIGKILL'));
  // SeaBIOS hands over to the NIC's iPXE ROM, which starts DHCP on the lab switch.
  await waitForLine(node, /iPXE/, 60_000);
  t.regex(sh('ip', ['-n', `bblab-${lab}`, 'link', 'show', 'master', 'br0']), /bt-n1/);
  const exited = new Promise<number | null>((r) => node.once('exit', r));
  node.kill('SIGTERM');
  await exited;
  t.notRegex(sh('ip', ['-n', `bblab-${lab}`, 'link', 'show']), /bt-n1/, 'its tap port is removed');
});
