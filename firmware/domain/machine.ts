/**
 * The machine record and its lifecycle (pure: no I/O, time comes in as `now`).
 *
 * A machine is keyed by its MAC (`aa:bb:cc:dd:ee:ff`, the form of core/net.normalizeMac)
 * and carries the SMBIOS UUID of DHCP option 97 when the ROM sent one. Its state moves
 *
 *   unknown → pending → approved | rejected
 *   approved → deploying → deployed → reimage-requested → deploying → …
 *
 * only through `transition()`, which returns the new record and a `change` with a reason
 * (the timeline event), or a BootboxError('INVALID_STATE') naming what was refused and why.
 * Every allowed step is one row of TRANSITIONS below; nothing else moves a state.
 */
import { BootboxError } from '../core/errors.ts';

/**
 * Architecture of a machine as the DHCP classification names it. This is the same union as
 * protocols/dhcp/classify.ts re-exports it as ArchName (the domain imports nothing above it).
 */
export type MachineArch =
  | 'bios'
  | 'uefi-ia32'
  | 'uefi-x64'
  | 'uefi-ebc'
  | 'arm32-uefi'
  | 'arm64-uefi'
  | 'riscv32-uefi'
  | 'riscv64-uefi'
  | 'loongarch64-uefi'
  | 'arm32-uboot'
  | 'arm64-uboot'
  | 'rpi'
  | 'unknown';

/** Re-exported by classify.ts as Firmware. */
export type MachineFirmware = 'bios' | 'uefi' | 'uboot' | 'rpi' | 'unknown';

export const MACHINE_STATES = [
  'unknown',
  'pending',
  'approved',
  'rejected',
  'deploying',
  'deployed',
  'reimage-requested',
] as const;
export type MachineState = (typeof MACHINE_STATES)[number];

/**
 * The UEFI x86 first stages (policy/first-stage.ts): iPXE with its own NIC drivers (`ipxe.efi`)
 * or on the firmware's (`snponly.efi`), each failing on some NICs; or the Secure Boot chain
 * (`shim`: Microsoft-signed shim, then Debian's signed GRUB).
 */
export const UEFI_X86_FIRST_STAGES = ['ipxe.efi', 'snponly.efi', 'shim'] as const;
/** The per-machine override of the UEFI x86 first stage. */
export type UefiX86FirstStage = (typeof UEFI_X86_FIRST_STAGES)[number];

export type ReimageMode = 'next-boot' | 'wipe';

/** An outstanding reimage request: kept apart so `cancel-reimage` can undo it exactly. */
export interface ReimageRequest {
  /** The state the machine was in when the request came; `cancel-reimage` returns there. */
  from: 'approved' | 'deploying' | 'deployed';
  mode: ReimageMode;
  /** Image to deploy instead of the machine's own; applied when the deploy starts. */
  image?: string;
  requestedAt: string;
  by?: string;
}

/** What the box last answered this machine (one line of the timeline, kept on the record). */
export interface BootSummary {
  at: string;
  /** 'ignore' | 'first-stage' | 'local' | 'deploy' | 'menu' | 'wait' | 'rejected' */
  action: string;
  /** The first-stage file or script URL handed out, if any. */
  file?: string;
  image?: string;
  ip?: string;
}

export interface Machine {
  /** `aa:bb:cc:dd:ee:ff`, lower case: the key. */
  mac: string;
  /** SMBIOS UUID from option 97, when the ROM sent a real one. */
  uuid?: string;
  arch: MachineArch;
  firmware: MachineFirmware;
  /** The host name given by the naming policy or by hand (policy/naming.ts). */
  name?: string;
  ip?: string;
  /** ISO 8601. */
  firstSeen: string;
  lastSeen: string;
  state: MachineState;
  /** When and why the state last changed (the last change of the timeline). */
  stateSince: string;
  stateReason: string;
  /** Image for this machine; overrides its group's and the arch default. */
  image?: string;
  group?: string;
  firstStageOverride?: UefiX86FirstStage;
  /** Outstanding reimage request; present exactly when state is 'reimage-requested'. */
  reimage?: ReimageRequest;
  bootCount: number;
  lastBoot?: BootSummary;
}

export type MachineEvent =
  /** First netboot of a machine the registry does not know yet (or was reset). */
  | { type: 'seen'; policy: 'approve' | 'auto' }
  /** Added by an administrator ahead of its first boot (WDS "prestaged"). */
  | { type: 'prestage'; by?: string; reason?: string }
  | { type: 'approve'; by?: string; reason?: string }
  | { type: 'reject'; by?: string; reason?: string }
  | { type: 'deploy-started'; image?: string }
  | { type: 'deployed' }
  | { type: 'reimage'; mode?: ReimageMode; image?: string; by?: string; reason?: string }
  | { type: 'cancel-reimage'; by?: string }
  /** Forget the approval: the next netboot counts as a first one again. */
  | { type: 'reset'; by?: string; reason?: string };

export type MachineEventType = MachineEvent['type'];

export interface StateChange {
  event: MachineEventType;
  from: MachineState;
  to: MachineState;
  reason: string;
  at: string;
  by?: string;
}

export interface TransitionResult {
  machine: Machine;
  change: StateChange;
}

interface Rule {
  from: readonly MachineState[];
  /** Returns the target state and the reason; the machine is the one before the change. */
  to: (m: Machine, e: MachineEvent) => { state: MachineState; reason: string };
}

/** Explains a refusal for each event, in words an admin reads in the UI or an API error. */
const REFUSALS: Record<MachineEventType, string> = {
  seen: 'only a machine the registry does not know yet (state unknown) can be seen for the first time',
  prestage: 'only a machine the registry does not know yet (state unknown) can be pre-staged',
  approve: 'only a pending machine can be approved',
  reject: 'only a pending machine can be rejected',
  'deploy-started': 'a deploy can start only on an approved, deploying or reimage-requested machine',
  deployed: 'only a deploying machine can be marked deployed',
  reimage: 'only an approved, deploying or deployed machine can be reimaged',
  'cancel-reimage': 'there is no reimage request to cancel',
  reset: 'the machine is already unknown',
};

const by = (e: MachineEvent): string => ('by' in e && e.by ? ` by ${e.by}` : '');
const why = (e: MachineEvent): string => ('reason' in e && e.reason ? `: ${e.reason}` : '');

/** The whole lifecycle. A (state, event) pair not listed here is refused. */
export const TRANSITIONS: Record<MachineEventType, Rule> = {
  seen: {
    from: ['unknown'],
    to: (_m, e) =>
      e.type === 'seen' && e.policy === 'auto'
        ? { state: 'approved', reason: 'first netboot; unknown machines are approved automatically' }
        : { state: 'pending', reason: 'first netboot; waiting for an administrator to approve it' },
  },
  prestage: {
    from: ['unknown'],
    to: (_m, e) => ({ state: 'approved', reason: `pre-staged${by(e)}${why(e)}` }),
  },
  approve: {
    from: ['pending'],
    to: (_m, e) => ({ state: 'approved', reason: `approved${by(e)}${why(e)}` }),
  },
  reject: {
    from: ['pending'],
    to: (_m, e) => ({ state: 'rejected', reason: `rejected${by(e)}${why(e)}` }),
  },
  'deploy-started': {
    // deploying → deploying: the node netbooted again in the middle of a deploy (power cut,
    // crash) and is sent the deploy environment again; the timeline shows the restart.
    from: ['approved', 'reimage-requested', 'deploying'],
    to: (m, e) => {
      const image = imageForDeploy(m, e);
      const what = image ? `image ${image}` : 'no image named';
      if (m.state === 'deploying') return { state: 'deploying', reason: `deploy restarted (${what})` };
      if (m.state === 'reimage-requested') return { state: 'deploying', reason: `reimage started (${what})` };
      return { state: 'deploying', reason: `deploy started (${what})` };
    },
  },
  deployed: {
    from: ['deploying'],
    to: () => ({ state: 'deployed', reason: 'the deploy environment reported success' }),
  },
  reimage: {
    from: ['approved', 'deploying', 'deployed'],
    to: (_m, e) => {
      const r = e as Extract<MachineEvent, { type: 'reimage' }>;
      const mode = r.mode ?? 'next-boot';
      const image = r.image ? ` with image ${r.image}` : '';
      return { state: 'reimage-requested', reason: `reimage (${mode})${image} requested${by(e)}${why(e)}` };
    },
  },
  'cancel-reimage': {
    from: ['reimage-requested'],
    to: (m, e) => ({ state: m.reimage?.from ?? 'deployed', reason: `reimage request cancelled${by(e)}` }),
  },
  reset: {
    from: ['pending', 'approved', 'rejected', 'deploying', 'deployed', 'reimage-requested'],
    to: (_m, e) => ({
      state: 'unknown',
      reason: `reset${by(e)}${why(e)}; the next netboot counts as a first one`,
    }),
  },
};

function imageForDeploy(m: Machine, e: MachineEvent): string | undefined {
  if (e.type === 'deploy-started' && e.image) return e.image;
  return m.reimage?.image ?? m.image;
}

/** True when `transition(m, {type})` would be accepted. */
export function canTransition(state: MachineState, event: MachineEventType): boolean {
  return TRANSITIONS[event].from.includes(state);
}

/**
 * Applies one lifecycle event. Pure: returns a new record (the input is not touched) and the
 * change for the timeline, or a BootboxError('INVALID_STATE') whose message names the machine,
 * its state, the refused event and the rule.
 */
export function transition(machine: Machine, event: MachineEvent, now: Date): TransitionResult | BootboxError {
  const rule = TRANSITIONS[event.type];
  if (!rule.from.includes(machine.state)) {
    const who = machine.name ? `${machine.name} (${machine.mac})` : machine.mac;
    return new BootboxError(
      'INVALID_STATE',
      `cannot ${event.type} ${who}: it is ${machine.state}; ${REFUSALS[event.type]}`,
      { mac: machine.mac, state: machine.state, event: event.type, allowedFrom: [...rule.from] },
    );
  }
  const at = now.toISOString();
  const { state, reason } = rule.to(machine, event);
  const next: Machine = { ...machine, state, stateSince: at, stateReason: reason };

  switch (event.type) {
    case 'reimage':
      next.reimage = {
        from: machine.state as ReimageRequest['from'],
        mode: event.mode ?? 'next-boot',
        requestedAt: at,
        ...(event.image !== undefined && { image: event.image }),
        ...(event.by !== undefined && { by: event.by }),
      };
      break;
    case 'deploy-started': {
      const image = imageForDeploy(machine, event);
      if (image !== undefined) next.image = image;
      delete next.reimage;
      break;
    }
    case 'cancel-reimage':
    case 'reset':
      delete next.reimage;
      break;
  }

  const change: StateChange = { event: event.type, from: machine.state, to: state, reason, at };
  if ('by' in event && event.by) change.by = event.by;
  return { machine: next, change };
}

export interface NewMachineInput {
  mac: string;
  arch: MachineArch;
  firmware: MachineFirmware;
  uuid?: string;
  name?: string;
  ip?: string;
}

/**
 * A record for a MAC the registry has never seen, in state `unknown`. It becomes pending or
 * approved by the `seen` (or `prestage`) event. The MAC must already be normalised.
 */
export function newMachine(input: NewMachineInput, now: Date): Machine {
  const at = now.toISOString();
  const m: Machine = {
    mac: input.mac,
    arch: input.arch,
    firmware: input.firmware,
    firstSeen: at,
    lastSeen: at,
    state: 'unknown',
    stateSince: at,
    stateReason: 'not seen before',
    bootCount: 0,
  };
  if (input.uuid !== undefined) m.uuid = input.uuid;
  if (input.name !== undefined) m.name = input.name;
  if (input.ip !== undefined) m.ip = input.ip;
  return m;
}

export interface BootSeen {
  action: string;
  file?: string;
  image?: string;
  ip?: string;
  /** What the latest DHCP request told (a ROM may report a different arch after a BIOS/UEFI switch). */
  arch?: MachineArch;
  firmware?: MachineFirmware;
  uuid?: string;
}

/**
 * Records one boot on the record (last seen, boot count, last boot). Call it once per boot
 * (the first DHCP answer of a boot), not per retransmitted request. Not a state change: the
 * lifecycle moves only through `transition()`.
 */
export function recordBoot(machine: Machine, boot: BootSeen, now: Date): Machine {
  const at = now.toISOString();
  const lastBoot: BootSummary = { at, action: boot.action };
  if (boot.file !== undefined) lastBoot.file = boot.file;
  if (boot.image !== undefined) lastBoot.image = boot.image;
  if (boot.ip !== undefined) lastBoot.ip = boot.ip;
  const next: Machine = { ...machine, lastSeen: at, bootCount: machine.bootCount + 1, lastBoot };
  if (boot.ip !== undefined) next.ip = boot.ip;
  if (boot.arch !== undefined && boot.arch !== 'unknown') next.arch = boot.arch;
  if (boot.firmware !== undefined && boot.firmware !== 'unknown') next.firmware = boot.firmware;
  if (boot.uuid !== undefined) next.uuid = boot.uuid;
  return next;
}
