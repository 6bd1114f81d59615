/**
 * Renders a ScriptPlan as a grub.cfg (pure), for the nodes that boot Debian's signed GRUB
 * netboot image instead of iPXE (ARM64 UEFI, and x64 Secure Boot through shim).
 *
 * How GRUB finds its configuration: Debian's netboot images (grubnetx64.efi, grubnetaa64.efi)
 * are built with the prefix `/grub` on the device they were loaded from, `(tftp,<server>)`:
 * their embedded config sources `$prefix/<platform>/grub.cfg` if it exists, else
 * `$prefix/grub.cfg`. So the box serves `grub/grub.cfg` (renderGrubBootstrap), which hands
 * over to the machine's own `<mac>.grub.cfg`.
 *
 * Those images have TFTP but no HTTP client (GRUB 2.06-13: `disk 'http,…' not found`), so
 * the box's own files go over TFTP: with `bootTree` in the context, a plan URL into the
 * boot tree as HTTP serves it (`http://10.77.0.1:8081/boot/deploy/vmlinuz`) is rendered as
 * the same file over TFTP (`(tftp,10.77.0.1)/deploy/vmlinuz`). Other URLs stay as they are.
 *
 * Values follow policy/script-values.ts, and every interpolated one is also single-quoted
 * (GRUB expands nothing inside '…'). URLs become GRUB device paths:
 * `http://10.77.0.1/boot/x` → `(http,10.77.0.1)/boot/x`, `tftp://…` → `(tftp,…)/…`.
 * GRUB's http and tftp drivers always connect to ports 80 and 69 and its device names carry
 * no port, so a URL with another port is refused (UNSAFE_SCRIPT_VALUE) rather than rendered
 * into a path that would fetch from the wrong place.
 *
 * Secure Boot: under shim, GRUB's `linux` has shim verify the kernel (Debian's signed
 * kernels pass: shim carries Debian's CA); initrds are not verified.
 *
 * Local boot: GRUB's `exit` hands control back to the firmware but (upstream, minicmd.c)
 * takes no status and returns EFI_SUCCESS, which some firmware answers with its setup
 * screen instead of the next boot option. So the cfg first looks for the removable-media
 * loader every UEFI disk install has (\EFI\BOOT\BOOTAA64.EFI on ARM64, BOOTX64.EFI on x64;
 * GRUB's FAT driver ignores case) and chainloads it; only if there is none does it `exit 1`
 * (the status is passed on by GRUB builds with Red Hat's exit-code patch, ignored upstream).
 *
 * GRUB has no `chain --replace`: each poll of a wait is a nested `configfile`. Keep
 * pollRetries moderate for GRUB nodes (each level holds a little of GRUB's memory).
 */
import { BootboxError } from '../core/errors.ts';
import { pollUrl } from './ipxe-script.ts';
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
import { count, grubQuote, menuKey, text, token } from './script-values.ts';

/** The render context of a grub.cfg. */
export interface GrubRenderContext extends RenderContext {
  /**
   * The boot tree as the HTTP boot server serves it (`http://10.77.0.1:8081/boot/`) and as
   * TFTP serves it (`tftp://10.77.0.1/`): plan URLs under the first are fetched from the second.
   */
  bootTree?: { http: string; tftp: string };
}

export function renderGrubCfg(plan: ScriptPlan, ctx: GrubRenderContext): string | BootboxError {
  try {
    const lines = [`# bootbox: ${plan.kind} for ${token(plan.mac, 'MAC')}`, ...body(plan, ctx)];
    return `${lines.join('\n')}\n`;
  } catch (e) {
    if (e instanceof BootboxError) return e;
    throw e;
  }
}

/**
 * The grub.cfg that GRUB's netboot image reads from its prefix (`grub/grub.cfg` over TFTP):
 * it hands over to the machine's own configuration, `<tftpBase>/<mac>.grub.cfg` (GRUB sets
 * `net_default_mac` to the booting NIC's MAC, lower case with colons).
 */
export function renderGrubBootstrap(tftpBase: string): string | BootboxError {
  try {
    const base = grubPath(`${tftpBase.replace(/\/+$/, '')}/`);
    return `# bootbox: hand over to this machine's own configuration\nconfigfile ${grubQuote(base)}\${net_default_mac}'.grub.cfg'\n`;
  } catch (e) {
    if (e instanceof BootboxError) return e;
    throw e;
  }
}

function body(plan: ScriptPlan, ctx: GrubRenderContext): string[] {
  switch (plan.kind) {
    case 'local':
      return local(plan);
    case 'deploy':
      return [...deploy(plan, ctx), ...failed(`could not start the deploy environment for ${plan.mac}`)];
    case 'wait':
      return wait(plan, ctx);
    case 'rejected':
      return rejected(plan);
    case 'menu':
      return menu(plan, ctx);
  }
}

/** A URL into the box's boot tree over HTTP becomes the same file over TFTP (see the module comment). */
function fetchUrl(url: string, ctx: GrubRenderContext): string {
  const tree = ctx.bootTree;
  if (!tree) return url;
  const http = tree.http.endsWith('/') ? tree.http : `${tree.http}/`;
  if (!url.startsWith(http)) return url;
  const rest = url.slice(http.length);
  // The same boot-tree path rules as the file servers: no query, no `..`.
  if (/[?#]/.test(rest) || rest.split('/').includes('..')) return url;
  return `${tree.tftp.replace(/\/+$/, '')}/${rest}`;
}

function echo(message: string): string {
  return `echo ${grubQuote(`bootbox: ${text(message)}`)}`;
}

function local(plan: LocalPlan): string[] {
  return [
    echo(plan.message),
    'if [ "$grub_cpu" = arm64 ]; then set bootbox_efi=/EFI/BOOT/BOOTAA64.EFI; else set bootbox_efi=/EFI/BOOT/BOOTX64.EFI; fi',
    'if search --no-floppy --file --set=bootbox_root "$bootbox_efi"; then',
    '  chainloader "($bootbox_root)$bootbox_efi"',
    '  boot',
    'fi',
    'exit 1',
  ];
}

function deploy(plan: DeployPlan, ctx: GrubRenderContext): string[] {
  const kernel = grubQuote(grubPath(fetchUrl(plan.kernelUrl, ctx)));
  const initrd = grubQuote(grubPath(fetchUrl(plan.initrdUrl, ctx)));
  const params = plan.params.map((p) => grubQuote(token(p, 'kernel parameter')));
  return [echo(plan.message), ['linux', kernel, ...params].join(' '), `initrd ${initrd}`, 'boot'];
}

function failed(message: string): string[] {
  const delay = count(FAILURE_DELAY_SEC, 'failure delay');
  return [echo(`${message}, rebooting in ${delay} s`), `sleep ${delay}`, 'reboot'];
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
  const next = grubQuote(grubPath(pollUrl(ctx.selfUrl, attempt + 1)));
  return [
    ...head,
    echo(`check ${attempt} of ${retries}, next in ${interval} s`),
    `sleep ${interval}`,
    `configfile ${next}`,
    ...failed('could not reach the box for the next check'),
  ];
}

function rejected(plan: RejectedPlan): string[] {
  const delay = count(FAILURE_DELAY_SEC, 'failure delay');
  return [echo(plan.message), `sleep ${delay}`, 'exit 1'];
}

function menu(plan: MenuPlan, ctx: GrubRenderContext): string[] {
  const keys = plan.entries.map((e) => menuKey(e.key));
  if (new Set(keys).size !== keys.length) {
    throw new BootboxError('UNSAFE_SCRIPT_VALUE', `menu keys must be unique (got ${keys.join(', ')})`);
  }
  const def = menuKey(plan.defaultKey);
  if (!keys.includes(def))
    throw new BootboxError('UNSAFE_SCRIPT_VALUE', `menu default ${def} is not one of its entries`);
  const out = [
    `echo ${grubQuote(text(plan.title))}`,
    `set timeout=${count(plan.timeoutSec, 'menu timeout', 0, 3600)}`,
    'set timeout_style=menu',
    `set default=${grubQuote(def)}`,
  ];
  for (const e of plan.entries) {
    const inner =
      e.plan.kind === 'deploy'
        ? [...deploy(e.plan, ctx), ...failed(`could not start the deploy environment for ${plan.mac}`)]
        : local(e.plan);
    out.push(`menuentry ${grubQuote(text(e.label))} --id ${grubQuote(menuKey(e.key))} {`);
    for (const line of inner) out.push(`  ${line}`);
    out.push('}');
  }
  return out;
}

/** `http://host/path` → `(http,host)/path`; refuses what GRUB cannot fetch as written. */
export function grubPath(url: string): string {
  const safe = token(url, 'URL');
  const m = /^(http|tftp):\/\/([A-Za-z0-9.-]+)(?::(\d+))?(\/[^#]*)$/i.exec(safe);
  if (!m) {
    throw new BootboxError(
      'UNSAFE_SCRIPT_VALUE',
      `URL ${JSON.stringify(url)} is not an http:// or tftp:// URL GRUB can fetch`,
      {
        value: url,
      },
    );
  }
  const proto = m[1]!.toLowerCase();
  const defaultPort = proto === 'http' ? 80 : 69;
  if (m[3] !== undefined && Number(m[3]) !== defaultPort) {
    throw new BootboxError(
      'UNSAFE_SCRIPT_VALUE',
      `URL ${url}: GRUB's ${proto} driver always uses port ${defaultPort}; serve HTTP boot on port ${defaultPort} for GRUB nodes`,
      { value: url },
    );
  }
  return `(${proto},${m[2]})${m[4]}`;
}
