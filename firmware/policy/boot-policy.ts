/**
 * Boot policy: what the box answers one netbooting machine (pure; cheap; no side effects).
 *
 * It is asked in two phases of one boot:
 * - `dhcp`: a DHCP/ProxyDHCP request. The answer is `ignore` or a `first-stage` (the file
 *   of policy/first-stage.ts for the client's architecture, or, for a client already running
 *   iPXE, the URL of its script).
 * - `script`: iPXE (or GRUB) asks for its script. The answer is `ignore` or a `script` with
 *   a ScriptPlan, which policy/ipxe-script.ts and policy/grub-cfg.ts render.
 *
 * The rules, in order (each decision carries the rule as its `reason`):
 * 1. answer `none` ignores everyone; answer `known` ignores a MAC the registry has no record of.
 * 2. A machine the registry does not know (no record, or reset to `unknown`) follows the
 *    unknown-client policy: `ignore` → ignore; `approve` → wait, and it is created `pending`;
 *    `auto` → deploy, and it is created `approved`.
 * 3. pending → wait; rejected → rejected; approved, reimage-requested or deploying → deploy
 *    (a node that netboots in the middle of a deploy starts it again); deployed → local.
 * 4. A deploy needs an image (reimage request, then the machine's own, then its group's,
 *    then the default for its arch), that image in the catalog, and a deploy environment for
 *    the arch. Without one of these the node is told to wait, with the reason on screen, so
 *    it continues by itself once an administrator fixes the settings.
 * 5. With the menu enabled, a deploy is offered as a menu: the chosen image first (the
 *    default after the timeout), the other catalog images for the arch, and the local disk.
 *
 * Decisions never write: `effects` lists the lifecycle events (domain/machine.ts) the caller
 * applies after serving the answer, and `createMachine` says to create the record first.
 * The planner is asked several times per boot (DISCOVER, REQUEST, port 4011): applying the
 * effects again is refused by the lifecycle (INVALID_STATE) and can be ignored.
 */
import type { Machine, MachineArch, MachineEvent, UefiX86FirstStage } from '../domain/machine.ts';
import { type FirstStage, firstStageFor } from './first-stage.ts';
import type { DeployPlan, LocalPlan, MenuEntry, ScriptPlan } from './script-plan.ts';

export type AnswerPolicy = 'all' | 'known' | 'none';
export type UnknownPolicy = 'approve' | 'auto' | 'ignore';

export interface ImageInfo {
  title?: string;
  /** Architectures the image is for; absent = any. */
  arches?: MachineArch[];
}

/** Kernel and initrd of the deploy environment for one architecture. */
export interface DeployEnvironment {
  /** URL, or a path under `<httpBase>/boot/`. */
  kernel: string;
  initrd: string;
  /** Extra kernel parameters (console=ttyS0 …), before the machine's own. */
  params?: string[];
}

export interface BootSettings {
  answer: AnswerPolicy;
  unknown: UnknownPolicy;
  /** HTTP boot server on the private interface, e.g. http://10.77.0.1 */
  httpBase: string;
  /** The box's name, shown on the node's screen ("… on bootbox <boxName>"). */
  boxName: string;
  /** UEFI x86 first stage unless the machine or its NIC's vendor (firstStageByVendor) says otherwise. */
  uefiX86: UefiX86FirstStage;
  /** UEFI x86 first stage by MAC prefix (the NIC's OUI); see policy/first-stage.ts. */
  firstStageByVendor?: Readonly<Record<string, UefiX86FirstStage>>;
  defaultImage: Partial<Record<MachineArch, string>>;
  groupImages: Record<string, string>;
  /** The image catalog: name → info. */
  images: Record<string, ImageInfo>;
  deployEnvironments: Partial<Record<MachineArch, DeployEnvironment>>;
  pollIntervalSec: number;
  pollRetries: number;
  onWaitTimeout: 'reboot' | 'exit';
  menu: { enabled: boolean; timeoutSec: number };
}

export interface BootClient {
  mac: string;
  /** From the DHCP classification; 'unknown' on a script request (the record's arch is used). */
  arch: MachineArch;
  isIpxe: boolean;
  isHttpBoot: boolean;
}

export interface BootInput {
  phase: 'dhcp' | 'script';
  client: BootClient;
  /** The registry's record for client.mac, or undefined for a MAC never seen. */
  machine: Machine | undefined;
  /** Script phase: the `?attempt=` of a wait poll (1 when absent). */
  attempt?: number;
  /** The name the registry will give a never-seen machine if this decision creates it. */
  newName?: string;
}

interface Outcome {
  reason: string;
  /** Lifecycle events to apply after serving this answer, in order. */
  effects: MachineEvent[];
  /** True when the registry has no record yet: create it (domain/machine.newMachine) before the effects. */
  createMachine: boolean;
}

export type BootDecision =
  | { action: 'ignore'; reason: string }
  | ({ action: 'first-stage'; stage: FirstStage } & Outcome)
  | ({ action: 'script'; plan: ScriptPlan } & Outcome);

export function decideBoot(input: BootInput, s: BootSettings): BootDecision {
  const { client, machine } = input;
  const mac = client.mac;
  if (s.answer === 'none') return ignore('answer policy is none: the box answers no one');
  if (!machine && s.answer === 'known') return ignore(`${mac} is not in the registry and the answer policy is known`);

  const state = machine?.state ?? 'unknown';
  const createMachine = machine === undefined;
  const seen: MachineEvent[] = [];
  if (state === 'unknown') {
    if (s.unknown === 'ignore') return ignore(`${mac} is not known and unknown machines are ignored`);
    seen.push({ type: 'seen', policy: s.unknown });
  }
  const arch: MachineArch = client.arch !== 'unknown' ? client.arch : (machine?.arch ?? 'unknown');

  if (input.phase === 'dhcp') {
    const stage = firstStageFor(
      { mac, arch, isIpxe: client.isIpxe, isHttpBoot: client.isHttpBoot },
      { uefiX86: s.uefiX86, byVendor: s.firstStageByVendor, httpBase: s.httpBase },
      machine?.firstStageOverride ? { uefiX86: machine.firstStageOverride } : undefined,
    );
    if (!stage) return ignore(`no first stage for architecture ${arch}`);
    const what =
      stage.kind === 'ipxe-script' ? 'iPXE script' : `first stage ${stage.kind === 'tftp' ? stage.file : stage.url}`;
    return { action: 'first-stage', stage, reason: `${state}: ${what}`, effects: seen, createMachine };
  }

  const name = machine?.name ?? input.newName;
  const who = name ? `${name} (${mac})` : mac;
  const script = (plan: ScriptPlan, reason: string, effects: MachineEvent[]): BootDecision => ({
    action: 'script',
    plan,
    reason,
    effects,
    createMachine,
  });
  const wait = (message: string, reason: string, effects: MachineEvent[]): BootDecision =>
    script(
      {
        kind: 'wait',
        mac,
        message,
        pollIntervalSec: s.pollIntervalSec,
        attempt: Math.max(1, Math.floor(input.attempt ?? 1)),
        retries: s.pollRetries,
        onTimeout: s.onWaitTimeout,
      },
      reason,
      effects,
    );

  const effectiveState = state === 'unknown' ? (s.unknown === 'auto' ? 'approved' : 'pending') : state;
  switch (effectiveState) {
    case 'pending':
      return wait(
        `waiting for approval of ${who} on bootbox ${s.boxName}`,
        state === 'unknown' ? 'unknown machine: waiting for approval' : 'pending: waiting for approval',
        seen,
      );
    case 'rejected':
      return script(
        {
          kind: 'rejected',
          mac,
          message: `${who} was rejected on bootbox ${s.boxName} (${machine?.stateReason ?? 'rejected'}), trying the next boot device`,
        },
        'rejected by an administrator',
        [],
      );
    case 'deployed':
      return script(localPlan(mac, who), 'deployed: boot from the local disk', []);
    case 'approved':
    case 'reimage-requested':
    case 'deploying': {
      const deploy = deployPlan(mac, who, name, arch, machine, s);
      if (typeof deploy === 'string') {
        return wait(
          `${who} is approved, but ${deploy}, waiting on bootbox ${s.boxName}`,
          `cannot deploy: ${deploy}`,
          seen,
        );
      }
      const reason = `${state === 'unknown' ? 'unknown machine approved automatically' : effectiveState}: deploy image ${deploy.image}`;
      if (s.menu.enabled) {
        return script(menuPlan(mac, who, name, arch, deploy, s), `${reason} (menu)`, seen);
      }
      return script(deploy, reason, [...seen, { type: 'deploy-started', image: deploy.image }]);
    }
    default:
      return ignore(`${mac} is in state ${state}, which has no boot answer`);
  }
}

function ignore(reason: string): BootDecision {
  return { action: 'ignore', reason };
}

function localPlan(mac: string, who: string): LocalPlan {
  return { kind: 'local', mac, message: `${who} boots from its local disk` };
}

/** The image a machine gets: reimage request, its own, its group's, then the arch default. */
export function resolveImage(
  machine: Machine | undefined,
  arch: MachineArch,
  s: Pick<BootSettings, 'defaultImage' | 'groupImages'>,
): { image: string; source: 'reimage' | 'machine' | 'group' | 'default' } | undefined {
  if (machine?.reimage?.image) return { image: machine.reimage.image, source: 'reimage' };
  if (machine?.image) return { image: machine.image, source: 'machine' };
  const group = machine?.group === undefined ? undefined : own(s.groupImages, machine.group);
  if (group) return { image: group, source: 'group' };
  const def = own(s.defaultImage, arch);
  return def ? { image: def, source: 'default' } : undefined;
}

/** A record's own string value (never one inherited from Object.prototype, e.g. "constructor"). */
function own<K extends string>(record: Partial<Record<K, string>>, key: K): string | undefined {
  const v = Object.hasOwn(record, key) ? record[key] : undefined;
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function imageFits(info: ImageInfo, arch: MachineArch): boolean {
  return info.arches === undefined || info.arches.includes(arch);
}

/** A deploy plan, or the reason (a phrase) why there cannot be one. */
function deployPlan(
  mac: string,
  who: string,
  name: string | undefined,
  arch: MachineArch,
  machine: Machine | undefined,
  s: BootSettings,
): DeployPlan | string {
  const resolved = resolveImage(machine, arch, s);
  if (!resolved) return `no image is set for it, its group or architecture ${arch}`;
  const info = Object.hasOwn(s.images, resolved.image) ? s.images[resolved.image] : undefined;
  if (!info) return `its image ${resolved.image} is not in the catalog`;
  if (!imageFits(info, arch)) return `its image ${resolved.image} is not for architecture ${arch}`;
  return deployFor(mac, who, name, arch, resolved.image, s);
}

function deployFor(
  mac: string,
  who: string,
  name: string | undefined,
  arch: MachineArch,
  image: string,
  s: BootSettings,
): DeployPlan | string {
  const env = Object.hasOwn(s.deployEnvironments, arch) ? s.deployEnvironments[arch] : undefined;
  if (!env) return `there is no deploy environment for architecture ${arch}`;
  const params = [
    ...(env.params ?? []),
    `bootbox.url=${s.httpBase}`,
    `bootbox.mac=${mac}`,
    `bootbox.image=${image}`,
    ...(name ? [`bootbox.name=${name}`] : []),
  ];
  return {
    kind: 'deploy',
    mac,
    image,
    kernelUrl: bootUrl(s.httpBase, env.kernel),
    initrdUrl: bootUrl(s.httpBase, env.initrd),
    params,
    message: `deploying image ${image} to ${who}`,
  };
}

function menuPlan(
  mac: string,
  who: string,
  name: string | undefined,
  arch: MachineArch,
  chosen: DeployPlan,
  s: BootSettings,
): ScriptPlan {
  const label = (image: string) => `Deploy ${s.images[image]?.title ?? image}`;
  const entries: MenuEntry[] = [{ key: 'deploy-1', label: label(chosen.image), plan: chosen }];
  const others = Object.keys(s.images)
    .filter((image) => image !== chosen.image && imageFits(s.images[image]!, arch))
    .sort();
  for (const image of others) {
    const plan = deployFor(mac, who, name, arch, image, s);
    if (typeof plan !== 'string') entries.push({ key: `deploy-${entries.length + 1}`, label: label(image), plan });
  }
  entries.push({ key: 'local', label: 'Boot from the local disk', plan: localPlan(mac, who) });
  return {
    kind: 'menu',
    mac,
    title: `bootbox ${s.boxName}: ${who}`,
    timeoutSec: s.menu.timeoutSec,
    defaultKey: 'deploy-1',
    entries,
  };
}

/** A deploy-environment file: a URL as it is, or a path under `<httpBase>/boot/`. */
export function bootUrl(httpBase: string, pathOrUrl: string): string {
  if (/^(https?|tftp):\/\//i.test(pathOrUrl)) return pathOrUrl;
  return `${httpBase.replace(/\/+$/, '')}/boot/${pathOrUrl.replace(/^\/+/, '')}`;
}
