/**
 * BootService's answers to GRUB over TFTP (services/boot-service.ts tftpFile): Debian's
 * signed GRUB netboot images read `grub/grub.cfg` from the TFTP server they came from and
 * have no HTTP client, so the box makes that file and each machine's `<mac>.grub.cfg`,
 * and the deploy environment's files are named as TFTP paths of the boot tree.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { defaultConfig } from '../../firmware/config/schema.ts';
import { ManualClock } from '../../firmware/core/clock.ts';
import { silentLogger } from '../../firmware/core/logger.ts';
import { BootService } from '../../firmware/services/boot-service.ts';
import { MachineRegistry } from '../../firmware/services/machines.ts';

const MAC = '52:54:00:77:e3:21';

async function setup(t: ExecutionContext, tftpPort?: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-boot-grub-'));
  const clock = new ManualClock();
  const emitted: { type: string; [k: string]: unknown }[] = [];
  const events = { emit: (type: string, e: object) => void emitted.push({ type, ...e }) };
  const registry = new MachineRegistry({
    file: path.join(dir, 'machines.json'),
    namingPattern: 'HPC-NODE%03#',
    clock,
    log: silentLogger,
    events,
  });
  await registry.load();
  t.teardown(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] };
  const service = new BootService({
    boot: {
      ...defaultConfig().boot,
      unknown: 'approve',
      images: { img: {} },
      defaultImage: { 'uefi-x64': 'img' },
      deployEnvironments: { 'uefi-x64': env },
      pollIntervalSec: 2,
    },
    serverAddr: '10.77.0.1',
    httpPort: 8081,
    ...(tftpPort ? { tftpPort } : {}),
    boxName: 'lab',
    registry,
    events,
    clock,
    log: silentLogger,
  });
  return { service, registry, emitted };
}

const text = (b: Buffer | undefined) => b?.toString('utf8');

test('grub/grub.cfg hands over to the machine file over TFTP, under any spelling of the name', async (t) => {
  const { service } = await setup(t);
  const want =
    // biome-ignore lint/suspicious/noTemplateCurlyInString: literal GRUB syntax
    "# bootbox: hand over to this machine's own configuration\nconfigfile '(tftp,10.77.0.1)/'${net_default_mac}'.grub.cfg'\n";
  for (const name of ['grub/grub.cfg', '/grub/grub.cfg', '\\grub\\grub.cfg'])
    t.is(text(service.tftpFile(name)), want, name);
  // The HTTP server's /boot/grub/grub.cfg says the same.
  t.is(service.handlers(async () => ({ kind: 'refused', reason: 'x' })).grubBootstrap().body, want);
});

test('other names are left to the boot tree', async (t) => {
  const { service } = await setup(t);
  for (const name of [
    'grubx64.efi',
    'grub/x86_64-efi/grub.cfg',
    'grub/arm64-efi/grub.cfg',
    'deploy/vmlinuz',
    `${MAC}.ipxe`,
    'zz:54:00:77:e3:21.grub.cfg',
    `${MAC}.grub.cfg?attempt=x`,
    `grub/${MAC}.grub.cfg`,
  ]) {
    t.is(service.tftpFile(name), undefined, name);
  }
});

test('a new machine: the wait polls over TFTP; once approved, its deploy loads kernel and initrd over TFTP', async (t) => {
  const { service, registry, emitted } = await setup(t);
  // The DHCP phase created it (pending) and recorded its arch.
  registry.create({ mac: MAC, arch: 'uefi-x64', firmware: 'uefi' });
  registry.apply(MAC, { type: 'seen', policy: 'approve' });
  const wait = text(service.tftpFile(`/${MAC.toUpperCase()}.grub.cfg`));
  t.regex(wait!, /^echo 'bootbox: waiting for approval of HPC-NODE001 \(52:54:00:77:e3:21\) on bootbox lab'$/m);
  t.regex(wait!, new RegExp(`^configfile '\\(tftp,10\\.77\\.0\\.1\\)/${MAC}\\.grub\\.cfg\\?attempt=2'$`, 'm'));
  const wait3 = text(service.tftpFile(`${MAC}.grub.cfg?attempt=3`));
  t.regex(wait3!, /check 3 of 720/);
  t.regex(wait3!, /attempt=4'$/m);

  t.false(registry.apply(MAC, { type: 'approve', by: 'test' }) instanceof Error);
  const deploy = text(service.tftpFile(`${MAC.replaceAll(':', '-')}.grub.cfg?attempt=4`));
  t.regex(
    deploy!,
    /^linux '\(tftp,10\.77\.0\.1\)\/deploy\/vmlinuz' 'console=ttyS0' 'bootbox\.url=http:\/\/10\.77\.0\.1:8081' 'bootbox\.mac=52:54:00:77:e3:21' 'bootbox\.image=img' 'bootbox\.name=HPC-NODE001' 'bootbox\.token=[0-9a-f]{24}'$/m,
  );
  t.regex(deploy!, /^initrd '\(tftp,10\.77\.0\.1\)\/deploy\/initrd\.img'$/m);
  t.is(registry.get(MAC)?.state, 'deploying');
  // Each script answer is a boot decision on the machine's timeline.
  t.deepEqual(
    emitted.filter((e) => e.type === 'boot.decision').map((e) => e.action),
    ['wait', 'wait', 'deploy'],
  );
});

test('GRUB reaches TFTP on port 69 only: another port renders no bootstrap', async (t) => {
  const { service } = await setup(t, 6969);
  t.is(text(service.tftpFile('grub/grub.cfg')), 'exit\n');
});
