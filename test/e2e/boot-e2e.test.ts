/**
 * One boot, end to end (ARCHITECTURE.md), with real firmware in QEMU (TCG) against
 * `bootbox serve`, on a private switch:
 *
 *   [box priv 10.77.0.1: DHCP full, TFTP, HTTP boot :8081] ── br0 ── tap ── QEMU node
 *   [box upl 10.78.0.1: API :8080] ── [up 10.78.0.50: the test's curl]
 *
 * The box hands out the TEST deploy environment (image-build/deploy-env: a Debian kernel
 * and a busybox initramfs that DHCPs, reports "deployed" with its token and powers off).
 * For each firmware a node that the box has never seen:
 * 1. PXE-boots, becomes `pending` and shows the wait message; the test approves it through
 *    the API and the SAME boot goes on (the next poll) into the deploy environment, which
 *    reports back: the machine is `deployed`, named by the naming policy; QEMU powers off.
 * 2. boots again and gets `local`: on BIOS iPXE's sanboot hands over to the disk, whose
 *    hand-made MBR prints a marker; on UEFI iPXE exits, OVMF goes on through its other boot
 *    options and at last boots the disk's hand-made \EFI\BOOT\BOOTX64.EFI, which prints a
 *    marker and powers off.
 * 3. is sent back to deploy with `reimage` (mode next-boot): the next boot deploys again.
 * 4. has every step (DHCP, TFTP for edk2, HTTP, state changes) on its timeline, in order.
 * Firmware: SeaBIOS + e1000 iPXE ROM (1-4); OVMF + e1000 iPXE EFI ROM (1-4); OVMF's own
 * edk2 PXE client (virtio-net, no ROM: TFTP ipxe.efi first, then iPXE; 1 and 4). One box
 * per group (BIOS, UEFI); nodes run one after another. Power-on → marker times are logged.
 * Needs qemu-system-x86, ipxe-qemu, ovmf and ipxe (a missing one fails the run).
 * BOOTBOX_E2E_SERIAL=1 logs the serial console of passing boots too.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type NodeFirmware, qemuArgs } from '../../board/lab.ts';
import { ensureDeployEnv } from '../../image-build/deploy-env/build.ts';
import { espDir } from '../helpers/efi-app.ts';
import { sh } from '../helpers/netns.ts';
import { type ConsoleNode, type Exit, watchConsole } from '../helpers/qemu-node.ts';
import { type SwitchLab, switchLab } from '../helpers/switch.ts';
import { type Entry, inOrder, type Step, step, summary } from '../helpers/timeline-steps.ts';

const BOX = '10.77.0.1';
const HTTP_PORT = 8081; // boxLab's http.port
const API = 'http://10.78.0.1:8080/api/v1';
const IMAGE = 'test-image';
const POLL_SEC = 1;
/** A boot that does not reach its next step in this time has failed. */
const STEP_MS = 90_000;
/**
 * A deployed UEFI node reaches its disk only after OVMF has tried every network boot option of
 * the NIC (PXEv4, PXEv6, HTTPv4, HTTPv6): about 105 s under TCG, 68 of them PXEv6 waiting for a
 * DHCPv6 server.
 */
const UEFI_DISK_MS = 180_000;

type Group = 'bios' | 'uefi';

// -- the box ---------------------------------------------------------------------------

interface Rig {
  sl: SwitchLab;
  token: string;
  workDir: string;
}

const rigs = new Map<Group, Promise<Rig>>();

async function makeRig(): Promise<Rig> {
  const env = await ensureDeployEnv();
  const sl = await switchLab();
  try {
    const bootDir = path.join(sl.lab.dataDir, 'boot');
    mkdirSync(path.join(bootDir, 'deploy'), { recursive: true });
    copyFileSync(env.kernel, path.join(bootDir, 'deploy/vmlinuz'));
    copyFileSync(env.initrd, path.join(bootDir, 'deploy/initrd.img'));
    const deployEnv = { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] };
    await sl.lab.start({
      bootDir,
      dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.120', leaseTime: 600 },
      boot: {
        unknown: 'approve',
        namingPattern: 'HPC-NODE%03#',
        uefiX86: 'ipxe.efi',
        images: { [IMAGE]: { title: 'Test image' } },
        defaultImage: { bios: IMAGE, 'uefi-x64': IMAGE },
        deployEnvironments: { bios: deployEnv, 'uefi-x64': deployEnv },
        pollIntervalSec: POLL_SEC,
      },
    });
    const token = readFileSync(path.join(sl.lab.dataDir, 'api-token'), 'utf8').trim();
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-boot-e2e-'));
    return { sl, token, workDir };
  } catch (e) {
    await sl.destroy();
    throw e;
  }
}

function rig(group: Group): Promise<Rig> {
  let r = rigs.get(group);
  if (!r) {
    r = makeRig();
    rigs.set(group, r);
  }
  return r;
}

test.before(() => {
  // A missing peer is an install failure, not a skip.
  for (const tool of ['qemu-system-x86_64', 'ip', 'curl']) {
    try {
      sh('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is missing: apt-get install qemu-system-x86 iproute2 curl`);
    }
  }
  for (const f of ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/lib/ipxe/ipxe.efi', '/usr/lib/ipxe/undionly.kpxe']) {
    if (!existsSync(f)) throw new Error(`${f} is missing: apt-get install qemu-system-x86 ipxe-qemu ovmf ipxe`);
  }
});

test.after.always(async () => {
  for (const r of rigs.values()) {
    const x = await r.catch(() => undefined);
    if (!x) continue;
    await x.sl.destroy();
    rmSync(x.workDir, { recursive: true, force: true });
  }
});

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into API answers
type Json = any;

async function api(r: Rig, method: 'GET' | 'POST', p: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const args = ['-sS', '-m', '10', '-X', method, '-w', '\n%{http_code}'];
  args.push('-H', `Authorization: Bearer ${r.token}`);
  if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(body));
  const { stdout } = await r.sl.lab.up.exec('curl', [...args, `${API}${p}`]);
  const cut = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), body: text ? JSON.parse(text) : undefined };
}

async function machine(r: Rig, mac: string): Promise<{ machine: Json; timeline: Json[] }> {
  const a = await api(r, 'GET', `/machines/${mac}`);
  if (a.status !== 200) throw new Error(`GET /machines/${mac}: ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

// -- the nodes' disks --------------------------------------------------------------------

/**
 * The MBR of a BIOS node's disk (16-bit real mode, loaded at 0:7C00): prints the marker
 * through INT 10h teletype (SeaBIOS's sercon mirrors it to the serial port) and halts.
 */
function bootSector(): Buffer {
  const code = [
    ...[0x31, 0xc0], //       xor ax, ax
    ...[0x8e, 0xd8], //       mov ds, ax
    ...[0xbe, 0x1a, 0x7c], // mov si, 0x7c1a        ; the message, right after the code
    0xfc, //                  cld
    0xac, //            next: lodsb
    ...[0x84, 0xc0], //       test al, al
    ...[0x74, 0x09], //       jz halt
    ...[0xb4, 0x0e], //       mov ah, 0x0e          ; teletype output
    ...[0xbb, 0x07, 0x00], // mov bx, 0x0007        ; page 0, grey
    ...[0xcd, 0x10], //       int 0x10
    ...[0xeb, 0xf2], //       jmp next
    0xfa, //            halt: cli
    0xf4, //                  hlt
    ...[0xeb, 0xfc], //       jmp halt
  ];
  if (code.length !== 0x1a) throw new Error(`the MBR code is ${code.length} bytes; its message offset says 0x1a`);
  const mbr = Buffer.alloc(512);
  Buffer.from(code).copy(mbr, 0);
  // sercon writes the last characters out only at the next INT 10h: "halted." is the
  // sacrificial tail, so the marker line itself always reaches the serial port.
  Buffer.from('\r\nBOOTBOX-LOCAL-DISK-MBR\r\nhalted.\r\n\0', 'latin1').copy(mbr, 0x1a);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

/** A 1 MiB raw disk whose sector 0 is bootSector(). */
function biosDisk(dir: string): string {
  const disk = path.join(dir, 'disk.img');
  const img = Buffer.alloc(1 << 20);
  bootSector().copy(img, 0);
  writeFileSync(disk, img);
  return disk;
}

// -- a node ------------------------------------------------------------------------------

/** What the tests look for on a node's serial console. */
const MARKS = {
  waiting: /bootbox: waiting for approval of /,
  deploying: /bootbox: deploying image /,
  start: /^BOOTBOX-DEPLOY-ENV START$/m,
  done: /^BOOTBOX-DEPLOY-ENV DONE /m,
  failed: /^BOOTBOX-DEPLOY-ENV FAILED /m,
  local: /bootbox: \S+ \([0-9a-f:]{17}\) boots from its local disk/,
  mbr: /BOOTBOX-LOCAL-DISK-MBR\n/,
  efi: /BOOTBOX-LOCAL-DISK-EFI/,
} as const;
type Mark = keyof typeof MARKS;

/** A node's console (helpers/qemu-node.ts) with this file's default step timeout. */
interface Node extends Omit<ConsoleNode<Mark>, 'waitFor' | 'exited'> {
  waitFor(mark: Mark, timeoutMs?: number): Promise<number>;
  exited(timeoutMs?: number): Promise<Exit>;
}

/**
 * Powers on a QEMU node on a new tap port of the switch (board/lab.ts qemuArgs, as `bootbox lab
 * node` runs it), serial console on stdout. BIOS nodes get biosDisk() as an IDE disk, UEFI nodes
 * an ESP with BOOTX64.EFI (helpers/efi-app.ts) as a read-only virtio disk; both boot after the NIC (bootindex 2). The node is
 * killed and its tap removed when the test ends.
 */
function startNode(t: ExecutionContext, r: Rig, firmware: NodeFirmware, mac: string, label: string): Node {
  const tap = r.sl.addTap();
  const dir = mkdtempSync(path.join(r.workDir, `${label}-`));
  const args = qemuArgs({
    lab: '-',
    nodeName: label,
    firmware,
    mac,
    tap,
    workDir: dir,
    ...(firmware === 'bios' ? { disk: biosDisk(dir) } : {}),
  });
  if (firmware !== 'bios') {
    // ide-hd refuses a read-only drive; virtio-blk takes one (OVMF has VirtioBlkDxe).
    args.push(
      ...['-drive', `file=fat:${espDir(dir, 'x64', 'BOOTBOX-LOCAL-DISK-EFI')},format=raw,if=none,id=d1,readonly=on`],
      ...['-device', 'virtio-blk-pci,drive=d1,bootindex=2'],
    );
  }
  const qemu = r.sl.sw.spawn('qemu-system-x86_64', args);
  const c = watchConsole(qemu, label, MARKS);
  t.teardown(async () => {
    await c.kill();
    try {
      r.sl.sw.ip('link', 'del', tap);
    } catch {
      // already gone
    }
    writeFileSync(path.join(dir, 'serial.log'), c.text());
  });
  return {
    ...c,
    waitFor: (mark, timeoutMs = STEP_MS) => c.waitFor(mark, timeoutMs),
    exited: (timeoutMs = STEP_MS) => c.exited(timeoutMs),
  };
}

/** Runs `body`; on failure (or with BOOTBOX_E2E_SERIAL) logs the node's console and the box's log. */
async function explained<T>(t: ExecutionContext, r: Rig, n: Node, body: () => Promise<T>): Promise<T> {
  try {
    const v = await body();
    if (process.env.BOOTBOX_E2E_SERIAL) t.log(`console:\n${n.stamped().join('\n')}`);
    return v;
  } catch (e) {
    t.log(`console (tail; seconds after power-on):\n${n.stamped().slice(-100).join('\n')}`);
    t.log(`box log (tail):\n${r.sl.lab.log.join('\n').split('\n').slice(-40).join('\n')}`);
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// -- the scenarios -----------------------------------------------------------------------

/** Power-on to marker, per boot, for the summary. */
const timings: string[] = [];

function timing(t: ExecutionContext, line: string): void {
  timings.push(line);
  t.log(line);
}

/**
 * A machine the box has never seen: it waits for approval, is approved while it polls, deploys
 * in the same boot and reports deployed; the deploy environment powers it off.
 */
async function firstBoot(t: ExecutionContext, group: Group, firmware: NodeFirmware, mac: string, name: string) {
  const r = await rig(group);
  const label = `${firmware}-${mac.slice(-2)}-approve`;
  t.is((await api(r, 'GET', `/machines/${mac}`)).status, 404, 'the box has never seen it');
  const n = startNode(t, r, firmware, mac, label);
  await explained(t, r, n, async () => {
    const tWait = await n.waitFor('waiting');
    const before = await machine(r, mac);
    t.is(before.machine.state, 'pending');
    t.is(before.machine.name, name, 'named by the naming policy');
    t.regex(n.text(), new RegExp(`bootbox: waiting for approval of ${name} \\(${mac}\\) on bootbox \\w+`));
    // Let it poll at least once, so that the approval lands in the middle of a polling boot.
    await sleep(POLL_SEC * 1000 + 500);
    t.is(n.at.start, undefined, 'nothing deploys before the approval');
    const tApprove = n.secs();
    const a = await api(r, 'POST', `/machines/${name}/approve`);
    t.is(a.status, 200, JSON.stringify(a.body));
    t.is(a.body.machine.state, 'approved');
    const tStart = await n.waitFor('start');
    const tDone = await n.waitFor('done');
    const ex = await n.exited();
    t.is(ex.code, 0, 'QEMU exited by itself (the deploy environment powered off)');
    const text = n.text();
    t.regex(text, /bootbox: check \d+ of \d+, next in \d+ s/, 'it polled while it waited');
    // The same boot went on: between the wait message and the deploy, only polls (no new
    // netboot, no reboot; with -no-reboot a reboot would have ended QEMU).
    const between = text.slice(text.search(MARKS.waiting), text.search(MARKS.deploying));
    t.notRegex(between, /Configuring \(net0|iPXE initialising|BdsDxe: starting|Booting from/);

    t.regex(text, new RegExp(`bootbox: deploying image ${IMAGE} to ${name} \\(${mac}\\)`));
    t.regex(text, new RegExp(`^BOOTBOX-DEPLOY-ENV DONE ${mac}$`, 'm'));
    t.regex(
      text,
      new RegExp(
        `^BOOTBOX-DEPLOY-ENV CMDLINE (vmlinuz )?initrd=initrd\\.img console=ttyS0 bootbox\\.url=http://${BOX}:${HTTP_PORT} `,
        'm',
      ),
    );
    t.regex(
      text,
      new RegExp(`^BOOTBOX-DEPLOY-ENV CMDLINE .* bootbox\\.name=${name} bootbox\\.token=[0-9a-f]{24}$`, 'm'),
    );
    t.is(n.at.local, undefined);
    const after = await machine(r, mac);
    t.is(after.machine.state, 'deployed');
    t.is(after.machine.name, name);
    t.is(after.machine.image, IMAGE);
    timing(
      t,
      `${label}: power-on → wait message ${tWait} s; approved at ${tApprove} s; deploy env START ${tStart} s ` +
        `(${(tStart - tApprove).toFixed(1)} s after the approval), DONE ${tDone} s; QEMU exit ${ex.at} s`,
    );
  });
}

/** A deployed machine boots again: `local`. iPXE hands over to the disk, whose boot program prints its marker. */
async function localBoot(t: ExecutionContext, group: Group, firmware: NodeFirmware, mac: string, name: string) {
  const r = await rig(group);
  const label = `${firmware}-${mac.slice(-2)}-local`;
  t.is((await machine(r, mac)).machine.state, 'deployed');
  const n = startNode(t, r, firmware, mac, label);
  await explained(t, r, n, async () => {
    const tLocal = await n.waitFor('local');
    const disk = firmware === 'bios' ? 'mbr' : 'efi';
    // UEFI: OVMF tries all the NIC's boot options before the disk (see the UEFI test below).
    const tDisk = await n.waitFor(disk, firmware === 'bios' ? STEP_MS : UEFI_DISK_MS);
    const text = n.text();
    t.regex(text, new RegExp(`bootbox: ${name} \\(${mac}\\) boots from its local disk`));
    const after = text.slice(text.search(MARKS.local));
    if (firmware === 'bios') {
      // iPXE's `sanboot --drive 0x80` boots the disk itself; SeaBIOS does not fall through to it.
      t.regex(after, /^Booting from SAN device 0x80$/m);
      t.notRegex(after, /Booting from Hard Disk/, 'booted by iPXE, not by SeaBIOS trying its next device');
    } else {
      // iPXE `exit 1`: the boot manager goes on to its next boot options and at last the disk
      // (virtio-blk: "UEFI Misc Device"), whose BOOTX64.EFI prints the marker and powers off.
      t.regex(after, /BdsDxe: starting Boot\w+ "UEFI Misc Device" from [^\n]*\n+BOOTBOX-LOCAL-DISK-EFI/);
      const ex = await n.exited();
      t.is(ex.code, 0, 'the EFI program powered the node off');
      const story = n
        .stamped()
        .filter((l) => /BdsDxe: (starting|failed)|>>Start|PXE-E|boots from its local disk|BOOTBOX-LOCAL-DISK/.test(l));
      t.log(`${label}, the boot manager's way to the disk (seconds after power-on):\n${story.join('\n')}`);
    }
    t.is(n.at.start, undefined, 'no deploy environment');
    t.is(n.at.waiting, undefined);
    t.is((await machine(r, mac)).machine.state, 'deployed');
    timing(t, `${label}: power-on → "boots from its local disk" ${tLocal} s, disk marker ${tDisk} s`);
  });
}

/** A deployed machine sent back with reimage (next-boot): the next boot deploys again, without approval. */
async function reimageBoot(t: ExecutionContext, group: Group, firmware: NodeFirmware, mac: string, name: string) {
  const r = await rig(group);
  const label = `${firmware}-${mac.slice(-2)}-reimage`;
  t.is((await machine(r, mac)).machine.state, 'deployed');
  const a = await api(r, 'POST', `/machines/${mac}/reimage`, { mode: 'next-boot' });
  t.is(a.status, 200, JSON.stringify(a.body));
  t.is(a.body.machine.state, 'reimage-requested');
  const n = startNode(t, r, firmware, mac, label);
  await explained(t, r, n, async () => {
    const tStart = await n.waitFor('start');
    const tDone = await n.waitFor('done');
    const ex = await n.exited();
    t.is(ex.code, 0, 'QEMU exited by itself');
    t.is(n.at.waiting, undefined, 'no approval wait this time');
    t.is(n.at.local, undefined);
    t.regex(n.text(), new RegExp(`bootbox: deploying image ${IMAGE} to ${name} \\(${mac}\\)`));
    t.regex(n.text(), new RegExp(`^BOOTBOX-DEPLOY-ENV DONE ${mac}$`, 'm'));
    const m = (await machine(r, mac)).machine;
    t.is(m.state, 'deployed');
    t.is(m.name, name);
    timing(t, `${label}: power-on → deploy env START ${tStart} s, DONE ${tDone} s; QEMU exit ${ex.at} s`);
  });
}

// -- timelines ---------------------------------------------------------------------------

const S = {
  dhcp: (message: 'DISCOVER' | 'REQUEST', ipxe: boolean, arch?: string) =>
    step(
      `DHCP ${message} (${ipxe ? 'iPXE' : 'not iPXE'}${arch ? `, ${arch}` : ''})`,
      (e) => e.type === 'dhcp.request' && e.messageType === message && e.ipxe === ipxe && (!arch || e.arch === arch),
    ),
  ack: (bootFile?: string) =>
    step(
      `DHCP ACK${bootFile ? ` naming ${bootFile}` : ''}`,
      (e) => e.type === 'dhcp.reply' && e.messageType === 'ACK' && (!bootFile || e.bootFile === bootFile),
    ),
  tftp: (type: 'tftp.request' | 'tftp.complete', file: string) =>
    step(`${type} ${file}`, (e) => e.type === type && e.filename === file),
  http: (p: string) =>
    step(`HTTP GET ${p} 200`, (e) => e.type === 'http.request' && e.path === p && e.status === 200 && e.bytes > 0),
  decision: (phase: 'dhcp' | 'script', action: string) =>
    step(
      `boot decision ${phase}: ${action}`,
      (e) => e.type === 'boot.decision' && e.phase === phase && e.action === action,
    ),
  state: (from: string, to: string) =>
    step(`state ${from} → ${to}`, (e) => e.type === 'machine.state' && e.from === from && e.to === to),
  report: step('deploy environment report accepted', (e) => e.type === 'boot.report' && e.accepted === true),
};

/** The steps of a deploy, from the script that starts it to the report. */
function deploySteps(mac: string, from: string): (Step | Step[])[] {
  return [
    [S.state(from, 'deploying'), S.decision('script', 'deploy')],
    S.http(`/boot/${mac}.ipxe`),
    S.http('/boot/deploy/vmlinuz'),
    S.http('/boot/deploy/initrd.img'),
    S.dhcp('DISCOVER', false, 'unknown'), // the deploy environment's own DHCP
    S.ack(),
    [S.report, S.state('deploying', 'deployed')],
  ];
}

/** Checks a machine's timeline: first boot (with approval), then, if given, a local boot and a reimage boot. */
async function checkTimeline(
  t: ExecutionContext,
  group: Group,
  mac: string,
  firstStage: (Step | Step[])[],
  later: { local: boolean; reimage: boolean },
): Promise<void> {
  const r = await rig(group);
  const { machine: m, timeline } = await machine(r, mac);
  const who = `${m.name} (${mac})`;
  t.log(`timeline of ${who}, ${timeline.length} entries:\n${summary(timeline)}`);
  const back = timeline.findIndex((e: Entry, i: number) => i > 0 && e.ts < timeline[i - 1].ts);
  t.is(
    back,
    -1,
    `entries in time order; entry ${back} goes back: ${JSON.stringify(timeline[back - 1])} then ${JSON.stringify(timeline[back])}`,
  );
  t.true(
    timeline.every((e: Entry) => e.mac === mac),
    'every entry names the machine',
  );
  const script = `http://${BOX}:${HTTP_PORT}/boot/${mac}.ipxe`;
  // Boot 1: PXE (and for edk2 the TFTP first stage), iPXE, the wait, the approval, the deploy.
  const boot1 = inOrder(t, who, timeline, [
    ...firstStage,
    S.dhcp('DISCOVER', true),
    S.ack(script),
    S.decision('script', 'wait'),
    S.http(`/boot/${mac}.ipxe`),
    S.state('pending', 'approved'),
    ...deploySteps(mac, 'approved'),
  ]);
  // The record was made pending by the first DHCP answer, before any script was asked for.
  const pending = timeline.findIndex((e: Entry) => S.state('unknown', 'pending').is(e));
  t.true(pending >= 0 && pending < boot1[firstStage.length + 3]!, 'unknown → pending before the first script');
  t.is(timeline.find((e: Entry) => S.state('pending', 'approved').is(e))?.by, 'token#1', 'approved through the API');
  const approved = timeline.findIndex((e: Entry) => S.state('pending', 'approved').is(e));
  t.false(
    timeline.slice(approved, boot1[firstStage.length + 6]).some((e: Entry) => e.type === 'dhcp.request'),
    'no new DHCP between the approval and the deploy script: the polling boot went on',
  );
  inOrder(t, who, timeline, [
    S.state('pending', 'approved'),
    S.decision('script', 'deploy'),
    S.http('/boot/deploy/vmlinuz'),
  ]);
  let next = boot1.at(-1)! + 1;
  if (later.local) {
    const boot2 = inOrder(
      t,
      who,
      timeline,
      [S.dhcp('DISCOVER', true), S.ack(script), S.decision('script', 'local'), S.http(`/boot/${mac}.ipxe`)],
      next,
    );
    next = boot2.at(-1)! + 1;
    t.false(
      timeline.slice(boot1.at(-1)! + 1, next).some((e: Entry) => e.type === 'machine.state'),
      'a local boot changes no state',
    );
  }
  if (later.reimage) {
    inOrder(
      t,
      who,
      timeline,
      [
        S.state('deployed', 'reimage-requested'),
        S.dhcp('DISCOVER', true),
        S.ack(script),
        ...deploySteps(mac, 'reimage-requested'),
      ],
      next,
    );
  }
}

// -- BIOS: SeaBIOS + the e1000 iPXE ROM --------------------------------------------------

const BIOS_MAC = '52:54:00:77:e2:11';
const UEFI_MAC = '52:54:00:77:e2:12';
const EDK2_MAC = '52:54:00:77:e2:13';

test('BIOS (SeaBIOS + iPXE ROM): a new node waits, is approved mid-boot, deploys and reports deployed', async (t) => {
  t.timeout(4 * STEP_MS);
  await firstBoot(t, 'bios', 'bios', BIOS_MAC, 'HPC-NODE001');
});

test('BIOS: the deployed node gets "local"; iPXE sanboots the disk, whose MBR prints its marker', async (t) => {
  t.timeout(2 * STEP_MS);
  await localBoot(t, 'bios', 'bios', BIOS_MAC, 'HPC-NODE001');
});

test('BIOS: reimage (next-boot) through the API; the next boot deploys again', async (t) => {
  t.timeout(2 * STEP_MS);
  await reimageBoot(t, 'bios', 'bios', BIOS_MAC, 'HPC-NODE001');
});

test('BIOS: the timeline shows DHCP, HTTP and the state changes of the three boots, in order', async (t) => {
  await checkTimeline(t, 'bios', BIOS_MAC, [], { local: true, reimage: true });
});

// -- UEFI: OVMF + the e1000 iPXE EFI ROM, and OVMF's own PXE client -----------------------

test('UEFI (OVMF + iPXE EFI ROM): a new node waits, is approved mid-boot, deploys and reports deployed', async (t) => {
  t.timeout(4 * STEP_MS);
  await firstBoot(t, 'uefi', 'uefi', UEFI_MAC, 'HPC-NODE001');
});

test('UEFI: the deployed node gets "local"; iPXE exits and OVMF boots the disk\'s BOOTX64.EFI', async (t) => {
  t.timeout(UEFI_DISK_MS + STEP_MS);
  await localBoot(t, 'uefi', 'uefi', UEFI_MAC, 'HPC-NODE001');
});

test('UEFI: reimage (next-boot) through the API; the next boot deploys again', async (t) => {
  t.timeout(2 * STEP_MS);
  await reimageBoot(t, 'uefi', 'uefi', UEFI_MAC, 'HPC-NODE001');
});

test('UEFI native edk2 PXE: TFTP ipxe.efi, then iPXE; waits, is approved mid-boot, deploys', async (t) => {
  t.timeout(4 * STEP_MS);
  await firstBoot(t, 'uefi', 'uefi-pxe', EDK2_MAC, 'HPC-NODE002');
});

test('UEFI: the timelines show DHCP, TFTP (edk2), HTTP and the state changes, in order', async (t) => {
  await checkTimeline(t, 'uefi', UEFI_MAC, [], { local: true, reimage: true });
  await checkTimeline(
    t,
    'uefi',
    EDK2_MAC,
    [
      S.dhcp('DISCOVER', false, 'uefi-x64'),
      S.ack('ipxe.efi'),
      S.tftp('tftp.request', 'ipxe.efi'),
      S.tftp('tftp.complete', 'ipxe.efi'),
    ],
    { local: false, reimage: false },
  );
  t.log(`power-on → marker, per boot:\n${timings.join('\n')}`);
});
