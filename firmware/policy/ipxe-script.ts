/**
 * Renders a ScriptPlan as an iPXE script (pure: a template over plain data).
 *
 * Every interpolated value goes through policy/script-values.ts: tokens are validated
 * (UNSAFE_SCRIPT_VALUE if not), text is sanitised. The only `${…}` in the output are our
 * own (`${platform}`, `${bootbox_choice}`). Failure is a returned BootboxError, never a
 * script that means something else.
 *
 * Local boot (ipxe.org/cmd/sanboot; UEFI spec, Boot Manager):
 * - BIOS: `sanboot --no-describe --drive 0x80` boots the first hard disk through INT 13h,
 *   iPXE's documented way to boot the local drive. If that fails, `exit 1`.
 * - UEFI: `exit 1`. The boot manager then tries the next Boot#### entry: a boot option that
 *   returns EFI_SUCCESS may instead stop at the boot manager menu (UEFI spec), and Dell and
 *   Lenovo servers do enter setup on `exit 0` (netboot.xyz #1276, warewulf3 #106). EFI
 *   `sanboot --drive` of a local disk is newer than the 2019 iPXE build this box ships.
 * - The script picks at run time with `iseq ${platform} pcbios`, so one script is right
 *   for a node whichever firmware mode it was switched to.
 *
 * Deploy: `imgfree` first (left-over images would be handed to the kernel as initrds,
 * ipxe#1390), then `kernel <url> initrd=<name> …`: the 2019 iPXE EFI build needs the
 * initrd named on the command line (NOTES-lab.md); iPXE names a downloaded image after the
 * last segment of its URL, so `<name>` is that segment.
 *
 * Wait: `chain --replace` runs the next poll in place of this script (ipxe.org/cmd/chain),
 * so a long wait does not nest one script inside another.
 */
import { BootboxError } from '../core/errors.ts';
import {
  type DeployPlan,
  FAILURE_DELAY_SEC,
  type LocalPlan,
  type MenuPlan,
  type RejectedPlan,
  type RenderContext,
  type ScriptPlan,
  type WaitPlan,
} from './script-plan.ts';
import { count, menuKey, text, token } from './script-values.ts';

const FAILED = 'bootbox_failed';

export function renderIpxeScript(plan: ScriptPlan, ctx: RenderContext): string | BootboxError {
  try {
    const lines = ['#!ipxe', ...body(plan, ctx)];
    return `${lines.join('\n')}\n`;
  } catch (e) {
    if (e instanceof BootboxError) return e;
    throw e;
  }
}

function body(plan: ScriptPlan, ctx: RenderContext): string[] {
  switch (plan.kind) {
    case 'local':
      return local(plan, 'bootbox_local');
    case 'deploy':
      return [...deploy(plan), ...failed(`could not start the deploy environment for ${plan.mac}`)];
    case 'wait':
      return wait(plan, ctx);
    case 'rejected':
      return rejected(plan);
    case 'menu':
      return menu(plan);
  }
}

function echo(message: string): string {
  return `echo bootbox: ${text(message)}`;
}

function local(plan: LocalPlan, label: string): string[] {
  const bios = `${label}_bios`;
  return [
    echo(plan.message),
    `iseq \${platform} pcbios && goto ${bios} ||`,
    'exit 1',
    `:${bios}`,
    'sanboot --no-describe --drive 0x80 || exit 1',
  ];
}

function deploy(plan: DeployPlan): string[] {
  const kernel = token(plan.kernelUrl, 'kernel URL');
  const initrd = token(plan.initrdUrl, 'initrd URL');
  const initrdName = token(lastSegment(plan.initrdUrl), 'initrd file name');
  const params = plan.params.map((p) => token(p, 'kernel parameter'));
  return [
    echo(plan.message),
    'imgfree',
    ['kernel', kernel, `initrd=${initrdName}`, ...params, '||', 'goto', FAILED].join(' '),
    `initrd ${initrd} || goto ${FAILED}`,
    `boot || goto ${FAILED}`,
  ];
}

function failed(message: string): string[] {
  const delay = count(FAILURE_DELAY_SEC, 'failure delay');
  return [`:${FAILED}`, echo(`${message}, rebooting in ${delay} s`), `sleep ${delay}`, 'reboot'];
}

function wait(plan: WaitPlan, ctx: RenderContext): string[] {
  const interval = count(plan.pollIntervalSec, 'poll interval', 1, 3600);
  const retries = count(plan.retries, 'poll retries', 1, 100_000);
  const attempt = Number(count(plan.attempt, 'poll attempt', 1, 100_000));
  const head = [echo(plan.message)];
  if (attempt >= plan.retries) {
    const then = plan.onTimeout === 'reboot' ? 'rebooting' : 'trying the next boot device';
    return [
      ...head,
      echo(`still waiting after ${retries} checks, ${then} in ${interval} s`),
      `sleep ${interval}`,
      plan.onTimeout === 'reboot' ? 'reboot' : 'exit 1',
    ];
  }
  const next = token(pollUrl(ctx.selfUrl, attempt + 1), 'script URL');
  return [
    ...head,
    echo(`check ${attempt} of ${retries}, next in ${interval} s`),
    `sleep ${interval}`,
    `chain --replace ${next} || goto ${FAILED}`,
    ...failed('could not reach the box for the next check'),
  ];
}

function rejected(plan: RejectedPlan): string[] {
  const delay = count(FAILURE_DELAY_SEC, 'failure delay');
  return [echo(plan.message), `sleep ${delay}`, 'exit 1'];
}

function menu(plan: MenuPlan): string[] {
  const keys = plan.entries.map((e) => menuKey(e.key));
  const labels = [...keys, FAILED, ...plan.entries.filter((e) => e.plan.kind === 'local').map((e) => `${e.key}_bios`)];
  if (new Set(labels).size !== labels.length) {
    throw new BootboxError('UNSAFE_SCRIPT_VALUE', `menu keys must be unique script labels (got ${keys.join(', ')})`);
  }
  const def = menuKey(plan.defaultKey);
  if (!keys.includes(def))
    throw new BootboxError('UNSAFE_SCRIPT_VALUE', `menu default ${def} is not one of its entries`);
  const timeoutMs = Number(count(plan.timeoutSec, 'menu timeout', 0, 3600)) * 1000;
  const out = [`menu ${text(plan.title)}`];
  for (const e of plan.entries) out.push(`item ${menuKey(e.key)} ${text(e.label)}`);
  out.push(`choose --default ${def} --timeout ${timeoutMs} bootbox_choice || goto ${def}`);
  out.push(`goto \${bootbox_choice}`);
  let anyDeploy = false;
  for (const e of plan.entries) {
    out.push(`:${menuKey(e.key)}`);
    if (e.plan.kind === 'deploy') {
      anyDeploy = true;
      out.push(...deploy(e.plan));
    } else {
      out.push(...local(e.plan, e.key));
    }
  }
  if (anyDeploy) out.push(...failed(`could not start the deploy environment for ${plan.mac}`));
  return out;
}

/** The script's own URL with `?attempt=N` (the URL must carry no query of its own). */
export function pollUrl(selfUrl: string, attempt: number): string {
  if (selfUrl.includes('?') || selfUrl.includes('#')) {
    throw new BootboxError('UNSAFE_SCRIPT_VALUE', `script URL ${JSON.stringify(selfUrl)} must not carry a query`);
  }
  return `${selfUrl}?attempt=${attempt}`;
}

/** `http://box/boot/deploy/initrd.img` → `initrd.img` (what iPXE names the image). */
export function lastSegment(url: string): string {
  const path = url.replace(/[?#].*$/, '');
  return path.slice(path.lastIndexOf('/') + 1);
}
