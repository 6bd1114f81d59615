/** The QEMU command lines of lab nodes (board/lab.ts), per firmware. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { NODE_FIRMWARES, type NodeFirmware, qemuArgs, qemuBinary } from '../../board/lab.ts';

function args(firmware: NodeFirmware, disk?: string): { line: string; vars?: string } {
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-qemu-args-'));
  try {
    const a = qemuArgs({ lab: 't', nodeName: 'n1', firmware, mac: '52:54:00:77:00:01', tap: 'tap1', workDir, disk });
    const vars = path.join(workDir, 'VARS.fd');
    return { line: a.join(' '), vars: existsSync(vars) ? vars : undefined };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

test('every firmware has its emulator; only arm64 is not x86', (t) => {
  t.deepEqual(
    NODE_FIRMWARES.map((f) => qemuBinary(f)),
    ['qemu-system-x86_64', 'qemu-system-x86_64', 'qemu-system-x86_64', 'qemu-system-x86_64', 'qemu-system-aarch64'],
  );
});

test('uefi-sb: the Secure Boot OVMF with SMM, Microsoft keys enrolled, and its own PXE client (no iPXE ROM)', (t) => {
  const { line, vars } = args('uefi-sb');
  t.regex(line, /-machine q35,smm=on -global driver=cfi\.pflash01,property=secure,value=on /);
  t.regex(line, /unit=0,readonly=on,file=\/usr\/share\/OVMF\/OVMF_CODE_4M\.secboot\.fd/);
  t.regex(line, /-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01,romfile=,bootindex=1/);
  t.truthy(vars, 'a private copy of the variables');
});

test('arm64: the virt machine, a Cortex-A57, AAVMF, virtio-net without ROM, a virtio disk', (t) => {
  const { line } = args('arm64', '/tmp/disk.img');
  t.regex(line, /-machine virt -cpu cortex-a57 /);
  t.notRegex(line, /-vga/);
  t.regex(line, /file=\/usr\/share\/AAVMF\/AAVMF_CODE\.fd/);
  t.regex(line, /-device virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01,romfile=,bootindex=1/);
  t.regex(line, /-device virtio-blk-pci,drive=d0,bootindex=2/);
});

test('the x86 firmwares are as they were', (t) => {
  t.regex(args('bios').line, /-machine q35 .*-device e1000,netdev=n0.*-fw_cfg name=etc\/sercon-port/);
  t.regex(args('uefi').line, /-device e1000,netdev=n0.*OVMF_CODE_4M\.fd/);
  t.regex(
    args('uefi-pxe').line,
    /-machine q35 .*virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01,romfile=,.*OVMF_CODE_4M\.fd/,
  );
  t.notRegex(args('uefi').line, /smm=on|secboot/);
});
