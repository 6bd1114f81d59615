/**
 * The GRUB boot paths, end to end with real firmware in QEMU (TCG) against `bootbox serve`:
 *
 *   [box priv 10.77.0.1: DHCP full, TFTP, HTTP boot :8081] ── br0 ── tap ── QEMU node
 *   [box upl 10.78.0.1: API :8080] ── [up 10.78.0.50: the test's curl]
 *
 * 1. x64 Secure Boot: OVMF's Secure Boot build with Microsoft's keys enrolled (Debian's
 *    OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd), its own PXE client on virtio-net.
 *    - Boot 1, a machine the box has never seen: the box's default first stage is `shim`,
 *      but `boot.firstStageByVendor` gives this lab's NIC prefix `ipxe.efi`; Secure Boot
 *      refuses the unsigned iPXE (the node is recorded, pending).
 *    - The admin sets the machine's own `firstStage: shim` (PUT) and approves it.
 *    - Boot 2: shimx64.efi (Microsoft-signed) → grubx64.efi (Debian-signed GRUB netboot
 *      image) → grub/grub.cfg → <mac>.grub.cfg over TFTP → `linux`/`initrd` over TFTP: shim
 *      verifies Debian's signed kernel; the kernel says Secure Boot is on, loads its signed
 *      NIC modules under lockdown, DHCPs, reports `deployed` and powers off.
 * 2. ARM64 UEFI: qemu-system-aarch64 `virt` with AAVMF and its own PXE client. DHCP (arch
 *    11) → grubnetaa64.efi over TFTP → grub/grub.cfg → the machine's own grub.cfg, which
 *    waits for approval (polling over TFTP); approved mid-boot, the next poll deploys the
 *    arm64 test deploy environment (Debian arm64 kernel + arm64 busybox), which reports.
 * Each boot's power-on → marker times are logged. Every step is on the machine's timeline.
 * Needs qemu-system-x86, ovmf, qemu-system-arm, qemu-efi-aarch64, qemu-user-static and the
 * first stages scripts/setup-system.sh fetches (a missing one fails the run).
 * BOOTBOX_E2E_SERIAL=1 logs the serial console of passing boots too.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { type NodeFirmware, qemuArgs, qemuBinary } from '../../board/lab.ts';
import { ensureDeployEnv } from '../../image-build/deploy-env/build.ts';
import { espDir } from '../helpers/efi-app.ts';
import { sh } from '../helpers/netns.ts';
import { type ConsoleNode, watchConsole } from '../helpers/qemu-node.ts';
import { type SwitchLab, switchLab } from '../helpers/switch.ts';
import { type Entry, inOrder, step, summary } from '../helpers/timeline-steps.ts';

const BOX = '10.77.0.1';
const HTTP_PORT = 8081; // boxLab's http.port
const API = 'http://10.78.0.1:8080/api/v1';
const IMAGE = 'test-image';
const POLL_SEC = 1;
/** A boot that does not reach its next step in this time has failed. */
const STEP_MS = 90_000;

const SB_MAC = '52:54:00:77:e3:21';
const ARM_MAC = '52:54:00:77:e3:31';
/** This lab's "NIC model": the vendor table gives it iPXE, which Secure Boot refuses. */
const LAB_NIC_PREFIX = '52:54:00:77:e3';

const FIRST_STAGES = [
  '/usr/lib/bootbox/shimx64.efi',
  '/usr/lib/bootbox/grubnetx64.efi',
  '/usr/lib/bootbox/grubnetaa64.efi',
];
const FIRMWARE_FILES: [string, string][] = [
  ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', 'ovmf'],
  ['/usr/share/OVMF/OVMF_VARS_4M.ms.fd', 'ovmf'],
  ['/usr/share/AAVMF/AAVMF_CODE.fd', 'qemu-efi-aarch64'],
  ['/usr/share/AAVMF/AAVMF_VARS.fd', 'qemu-efi-aarch64'],
];

// -- the box ---------------------------------------------------------------------------

interface Rig {
  sl: SwitchLab;
  token: string;
  workDir: string;
}

let rigP: Promise<Rig> | undefined;

async function makeRig(): Promise<Rig> {
  const [x64, arm64] = [await ensureDeployEnv(), await ensureDeployEnv({ arch: 'arm64' })];
  const sl = await switchLab();
  try {
    const bootDir = path.join(sl.lab.dataDir, 'boot');
    for (const [dir, env] of [
      ['deploy', x64],
      ['deploy-arm64', arm64],
    ] as const) {
      mkdirSync(path.join(bootDir, dir), { recursive: true });
      copyFileSync(env.kernel, path.join(bootDir, dir, 'vmlinuz'));
      copyFileSync(env.initrd, path.join(bootDir, dir, 'initrd.img'));
    }
    await sl.lab.start({
      bootDir,
      dhcp: { mode: 'full', range: '10.77.0.100-10.77.0.120', leaseTime: 600 },
      boot: {
        unknown: 'approve',
        namingPattern: 'GRUB-NODE%02#',
        uefiX86: 'shim',
        firstStageByVendor: { [LAB_NIC_PREFIX]: 'ipxe.efi' },
        images: { [IMAGE]: { title: 'Test image' } },
        defaultImage: { 'uefi-x64': IMAGE, 'arm64-uefi': IMAGE },
        deployEnvironments: {
          'uefi-x64': { kernel: 'deploy/vmlinuz', initrd: 'deploy/initrd.img', params: ['console=ttyS0'] },
          'arm64-uefi': {
            kernel: 'deploy-arm64/vmlinuz',
            initrd: 'deploy-arm64/initrd.img',
            params: ['console=ttyAMA0'],
          },
        },
        pollIntervalSec: POLL_SEC,
      },
    });
    const token = readFileSync(path.join(sl.lab.dataDir, 'api-token'), 'utf8').trim();
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'bootbox-grub-e2e-'));
    return { sl, token, workDir };
  } catch (e) {
    await sl.destroy();
    throw e;
  }
}

const rig = () => {
  rigP ??= makeRig();
  return rigP;
};

test.before(() => {
  // A missing peer is an install failure, not a skip.
  for (const tool of ['qemu-system-x86_64', 'qemu-system-aarch64', 'qemu-aarch64-static', 'ip', 'curl']) {
    try {
      sh('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is missing: bash scripts/setup-system.sh test`);
    }
  }
  for (const [f, pkg] of FIRMWARE_FILES) {
    if (!existsSync(f)) throw new Error(`${f} is missing: apt-get install ${pkg}`);
  }
  for (const f of FIRST_STAGES) {
    if (!existsSync(f)) throw new Error(`${f} is missing: bash scripts/setup-system.sh fetches it`);
  }
});

test.after.always(async () => {
  const r = await rigP?.catch(() => undefined);
  if (!r) return;
  await r.sl.destroy();
  rmSync(r.workDir, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: tests read deep into API answers
type Json = any;

async function api(r: Rig, method: 'GET' | 'POST' | 'PUT', p: string, body?: unknown) {
  const args = ['-sS', '-m', '10', '-X', method, '-w', '\n%{http_code}'];
  args.push('-H', `Authorization: Bearer ${r.token}`);
  if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(body));
  const { stdout } = await r.sl.lab.up.exec('curl', [...args, `${API}${p}`]);
  const cut = stdout.lastIndexOf('\n');
  const text = stdout.slice(0, cut);
  return { status: Number(stdout.slice(cut + 1)), body: text ? (JSON.parse(text) as Json) : undefined };
}

async function machine(r: Rig, mac: string): Promise<{ machine: Json; timeline: Entry[] }> {
  const a = await api(r, 'GET', `/machines/${mac}`);
  if (a.status !== 200) throw new Error(`GET /machines/${mac}: ${a.status} ${JSON.stringify(a.body)}`);
  return a.body;
}

// -- a node ------------------------------------------------------------------------------

const MARKS = {
  /** OVMF's boot manager refusing an image that Secure Boot does not allow. */
  refused: /BdsDxe: failed to load Boot\w+ "UEFI PXEv4[^\n]*: (Access Denied|Security Violation)/,
  grub: /Welcome to GRUB!/,
  waiting: /bootbox: waiting for approval of /,
  deploying: /bootbox: deploying image /,
  secureBoot: /secureboot: Secure boot enabled/,
  start: /^BOOTBOX-DEPLOY-ENV START$/m,
  done: /^BOOTBOX-DEPLOY-ENV DONE /m,
  failed: /^BOOTBOX-DEPLOY-ENV FAILED /m,
  local: /bootbox: \S+ \([0-9a-f:]{17}\) boots from its local disk/,
  disk: /BOOTBOX-LOCAL-DISK-AA64/,
} as const;
type Mark = keyof typeof MARKS;

/**
 * Powers on a QEMU node on a new tap port of the switch (board/lab.ts, as `bootbox lab node`
 * runs it): diskless, or with `disk`, a read-only virtio disk after the NIC holding an ESP
 * whose BOOTAA64.EFI (helpers/efi-app.ts) prints that marker and powers off.
 */
function startNode(
  t: ExecutionContext,
  r: Rig,
  firmware: NodeFirmware,
  mac: string,
  label: string,
  disk?: string,
): ConsoleNode<Mark> {
  const tap = r.sl.addTap();
  const dir = mkdtempSync(path.join(r.workDir, `${label}-`));
  const args = qemuArgs({ lab: '-', nodeName: label, firmware, mac, tap, workDir: dir });
  if (disk) {
    args.push(
      ...['-drive', `file=fat:${espDir(dir, 'aa64', disk)},format=raw,if=none,id=d1,readonly=on`],
      ...['-device', 'virtio-blk-pci,drive=d1,bootindex=2'],
    );
  }
  const qemu: ChildProcess = r.sl.sw.spawn(qemuBinary(firmware), args);
  const n = watchConsole(qemu, label, MARKS);
  t.teardown(async () => {
    await n.kill();
    try {
      r.sl.sw.ip('link', 'del', tap);
    } catch {
      // already gone
    }
    writeFileSync(path.join(dir, 'serial.log'), n.text());
  });
  return n;
}

/** Runs `body`; on failure (or with BOOTBOX_E2E_SERIAL) logs the node's console and the box's log. */
async function explained<T>(t: ExecutionContext, r: Rig, n: ConsoleNode<Mark>, body: () => Promise<T>): Promise<T> {
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

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

// -- timelines ---------------------------------------------------------------------------

/** TFTP names as GRUB and shim send them may start with "/". */
const tftpName = (e: Entry) => String(e.filename ?? '').replace(/^\/+/, '');
const S = {
  discover: (arch: string) =>
    step(
      `DHCP DISCOVER (${arch})`,
      (e) => e.type === 'dhcp.request' && e.messageType === 'DISCOVER' && e.ipxe === false && e.arch === arch,
    ),
  ack: (bootFile: string) =>
    step(
      `DHCP ACK naming ${bootFile}`,
      (e) => e.type === 'dhcp.reply' && e.messageType === 'ACK' && e.bootFile === bootFile,
    ),
  tftp: (file: string | RegExp) =>
    step(
      `TFTP ${file} sent whole`,
      (e) => e.type === 'tftp.complete' && (typeof file === 'string' ? tftpName(e) === file : file.test(tftpName(e))),
    ),
  decision: (action: string) =>
    step(
      `boot decision script: ${action}`,
      (e) => e.type === 'boot.decision' && e.phase === 'script' && e.action === action,
    ),
  state: (from: string, to: string) =>
    step(`state ${from} → ${to}`, (e) => e.type === 'machine.state' && e.from === from && e.to === to),
  report: step('deploy environment report accepted', (e) => e.type === 'boot.report' && e.accepted === true),
};

/** The deploy environment's own console lines, the same for every node that reaches it. */
function checkDeployEnv(t: ExecutionContext, text: string, mac: string, name: string, console: string): void {
  t.regex(text, new RegExp(`^BOOTBOX-DEPLOY-ENV DONE ${mac}$`, 'm'));
  t.regex(
    text,
    new RegExp(
      `^BOOTBOX-DEPLOY-ENV CMDLINE BOOT_IMAGE=\\S+ console=${console} bootbox\\.url=http://${BOX}:${HTTP_PORT} ` +
        `bootbox\\.mac=${mac} bootbox\\.image=${IMAGE} bootbox\\.name=${name} bootbox\\.token=[0-9a-f]{24}$`,
      'm',
    ),
  );
  t.is(/^BOOTBOX-DEPLOY-ENV FAILED .*$/m.exec(text)?.[0], undefined);
}

// -- x64 Secure Boot -------------------------------------------------------------------------

test.serial(
  'x64 Secure Boot: iPXE (by NIC vendor) is refused; with firstStage shim the signed chain deploys',
  async (t) => {
    t.timeout(4 * STEP_MS);
    const r = await rig();
    const name = 'GRUB-NODE01';
    t.is((await api(r, 'GET', `/machines/${SB_MAC}`)).status, 404, 'the box has never seen it');

    // Boot 1: the vendor table's ipxe.efi, which Secure Boot will not run.
    const n1 = startNode(t, r, 'uefi-sb', SB_MAC, 'sb-ipxe');
    const tRefused = await explained(t, r, n1, () => n1.waitFor('refused', STEP_MS));
    await n1.kill();
    t.log(`boot 1, ${tRefused} s after power-on: ${MARKS.refused.exec(n1.text())?.[0]}`);
    t.is(n1.at.grub, undefined);
    const pending = await machine(r, SB_MAC);
    t.like(pending.machine, { state: 'pending', name, arch: 'uefi-x64' });
    inOrder(t, name, pending.timeline, [S.discover('uefi-x64'), S.ack('ipxe.efi'), S.tftp('ipxe.efi')]);

    // The admin gives the machine the Secure Boot chain and approves it.
    const put = await api(r, 'PUT', `/machines/${SB_MAC}`, { firstStage: 'shim' });
    t.is(put.status, 200, JSON.stringify(put.body));
    t.is(put.body.machine.firstStageOverride, 'shim');
    t.is((await api(r, 'POST', `/machines/${name}/approve`)).status, 200);

    // Boot 2: shim → signed GRUB → grub.cfg from the box → the signed kernel.
    const n2 = startNode(t, r, 'uefi-sb', SB_MAC, 'sb-shim');
    await explained(t, r, n2, async () => {
      const tGrub = await n2.waitFor('grub', STEP_MS);
      const tDeploying = await n2.waitFor('deploying', STEP_MS);
      const tSecure = await n2.waitFor('secureBoot', STEP_MS);
      const tStart = await n2.waitFor('start', STEP_MS);
      const tDone = await n2.waitFor('done', STEP_MS);
      const ex = await n2.exited(STEP_MS);
      t.is(ex.code, 0, 'QEMU exited by itself (the deploy environment powered off)');
      const text = n2.text();
      t.is(n2.at.refused, undefined, 'nothing refused this time');
      t.regex(text, /Kernel is locked down from EFI Secure Boot/);
      t.regex(text, new RegExp(`bootbox: deploying image ${IMAGE} to ${name} \\(${SB_MAC}\\)`));
      checkDeployEnv(t, text, SB_MAC, name, 'ttyS0');
      t.regex(
        text,
        /deploy-env: \[[\d.]+\] NIC eth0 52:54:00:77:e3:21/,
        'the signed virtio_net module loaded under lockdown',
      );
      const { machine: m, timeline } = await machine(r, SB_MAC);
      t.like(m, { state: 'deployed', name, image: IMAGE, firstStageOverride: 'shim' });
      t.log(`timeline of ${name}:\n${summary(timeline)}`);
      const approved = timeline.findIndex((e) => S.state('pending', 'approved').is(e));
      t.true(approved > 0);
      inOrder(
        t,
        name,
        timeline,
        [
          S.discover('uefi-x64'),
          S.ack('shimx64.efi'),
          S.tftp('shimx64.efi'),
          S.tftp('grubx64.efi'),
          S.tftp('grub/grub.cfg'),
          S.decision('deploy'),
          S.tftp(`${SB_MAC}.grub.cfg`),
          S.tftp('deploy/vmlinuz'),
          S.tftp('deploy/initrd.img'),
          [S.report, S.state('deploying', 'deployed')],
        ],
        approved,
      );
      timing(
        t,
        `x64 Secure Boot: boot 1 (ipxe.efi) refused at ${tRefused} s; boot 2: power-on → GRUB ${tGrub} s, ` +
          `deploy script ${tDeploying} s, kernel "Secure boot enabled" ${tSecure} s, deploy env START ${tStart} s, ` +
          `DONE ${tDone} s; QEMU exit ${ex.at} s`,
      );
    });
  },
);

// -- ARM64 UEFI --------------------------------------------------------------------------

test.serial(
  'ARM64 UEFI (AAVMF PXE): GRUB waits for approval over TFTP, then deploys the arm64 environment',
  async (t) => {
    t.timeout(4 * STEP_MS);
    const r = await rig();
    const name = 'GRUB-NODE02';
    t.is((await api(r, 'GET', `/machines/${ARM_MAC}`)).status, 404, 'the box has never seen it');
    const n = startNode(t, r, 'arm64', ARM_MAC, 'arm64');
    await explained(t, r, n, async () => {
      const tGrub = await n.waitFor('grub', STEP_MS);
      const tWait = await n.waitFor('waiting', STEP_MS);
      t.like((await machine(r, ARM_MAC)).machine, { state: 'pending', name, arch: 'arm64-uefi' });
      // GRUB's console wraps at 80 columns.
      t.regex(n.text(), new RegExp(`bootbox: waiting for approval of ${name} \\(${ARM_MAC}\\) on bootbox\\s+\\w+`));
      // Let it poll at least once, so that the approval lands in the middle of a polling boot.
      await sleep(POLL_SEC * 1000 + 1500);
      t.regex(n.text(), /bootbox: check \d+ of \d+, next in \d+ s/, 'it polls while it waits');
      t.is(n.at.deploying, undefined, 'nothing deploys before the approval');
      const tApprove = n.secs();
      t.is((await api(r, 'POST', `/machines/${name}/approve`)).status, 200);
      const tDeploying = await n.waitFor('deploying', STEP_MS);
      const tStart = await n.waitFor('start', STEP_MS);
      const tDone = await n.waitFor('done', STEP_MS);
      const ex = await n.exited(STEP_MS);
      t.is(ex.code, 0, 'QEMU exited by itself (the deploy environment powered off)');
      const text = n.text();
      t.regex(text, /Linux version \S+-arm64 /);
      // One boot: between the wait and the deploy, only polls (no new PXE; -no-reboot would have ended QEMU).
      t.notRegex(
        text.slice(text.search(MARKS.waiting), text.search(MARKS.deploying)),
        /Start PXE over IPv4|Welcome to GRUB/,
      );
      checkDeployEnv(t, text, ARM_MAC, name, 'ttyAMA0');
      const { machine: m, timeline } = await machine(r, ARM_MAC);
      t.like(m, { state: 'deployed', name, image: IMAGE, arch: 'arm64-uefi' });
      t.log(`timeline of ${name}:\n${summary(timeline)}`);
      const steps = inOrder(t, name, timeline, [
        S.discover('arm64-uefi'),
        S.ack('grubnetaa64.efi'),
        S.tftp('grubnetaa64.efi'),
        S.tftp('grub/grub.cfg'),
        S.decision('wait'),
        S.tftp(`${ARM_MAC}.grub.cfg`),
        S.state('pending', 'approved'),
        [S.decision('deploy'), S.tftp(new RegExp(`^${ARM_MAC}\\.grub\\.cfg\\?attempt=\\d+$`))],
        S.tftp('deploy-arm64/vmlinuz'),
        S.tftp('deploy-arm64/initrd.img'),
        [S.report, S.state('deploying', 'deployed')],
      ]);
      t.false(
        timeline.slice(steps[6], steps[7]).some((e) => e.type === 'dhcp.request'),
        'no new DHCP between the approval and the deploy script: the polling boot went on',
      );
      timing(
        t,
        `ARM64: power-on → GRUB ${tGrub} s, wait message ${tWait} s; approved at ${tApprove} s; deploy script ` +
          `${tDeploying} s, deploy env START ${tStart} s (${(tStart - tApprove).toFixed(1)} s after the approval), ` +
          `DONE ${tDone} s; QEMU exit ${ex.at} s`,
      );
    });
  },
);

test.serial(
  'ARM64 UEFI: the deployed node gets "local"; GRUB finds the disk\'s BOOTAA64.EFI and chainloads it',
  async (t) => {
    t.timeout(3 * STEP_MS);
    const r = await rig();
    const name = 'GRUB-NODE02';
    t.is((await machine(r, ARM_MAC)).machine.state, 'deployed', 'the ARM64 test before deployed it');
    const n = startNode(t, r, 'arm64', ARM_MAC, 'arm64-local', 'BOOTBOX-LOCAL-DISK-AA64');
    await explained(t, r, n, async () => {
      const tLocal = await n.waitFor('local', STEP_MS);
      const tDisk = await n.waitFor('disk', STEP_MS);
      const ex = await n.exited(STEP_MS);
      t.is(ex.code, 0, 'the EFI program powered the node off');
      const text = n.text();
      t.regex(text, new RegExp(`bootbox: ${name} \\(${ARM_MAC}\\) boots from its local disk`));
      // GRUB chainloaded the disk's program itself: the firmware did not go on to its next boot option.
      t.notRegex(text.slice(text.search(MARKS.local)), /BdsDxe: (loading|starting) Boot/);
      t.is(n.at.deploying, undefined, 'no deploy environment');
      t.is(n.at.waiting, undefined);
      const { machine: m, timeline } = await machine(r, ARM_MAC);
      t.like(m, { state: 'deployed', name });
      const last = timeline.slice(
        timeline.findLastIndex((e) => e.type === 'dhcp.request' && e.messageType === 'DISCOVER'),
      );
      inOrder(t, name, last, [
        S.discover('arm64-uefi'),
        S.ack('grubnetaa64.efi'),
        S.tftp('grubnetaa64.efi'),
        S.tftp('grub/grub.cfg'),
        [S.decision('local'), S.tftp(`${ARM_MAC}.grub.cfg`)],
      ]);
      t.false(
        last.some((e) => e.type === 'machine.state'),
        'a local boot changes no state',
      );
      timing(t, `ARM64 local: power-on → "boots from its local disk" ${tLocal} s, disk marker ${tDisk} s`);
    });
  },
);

/** Power-on to marker, per boot, for the summary. */
const timings: string[] = [];

function timing(t: ExecutionContext, line: string): void {
  timings.push(line);
  t.log(line);
}

test.after('power-on → marker, per boot', (t) => {
  if (timings.length) t.log(timings.join('\n'));
});
