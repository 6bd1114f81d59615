/**
 * What a netbooting node is told to do once it runs iPXE or GRUB: plain data, decided by
 * policy/boot-policy.ts and rendered by policy/ipxe-script.ts and policy/grub-cfg.ts
 * (templates over data, as Tinkerbell smee renders its iPXE scripts). URLs are absolute
 * (`http://10.77.0.1/boot/…`); messages are whole sentences, shown as text.
 */

/** Boot from the local disk. */
export interface LocalPlan {
  kind: 'local';
  mac: string;
  message: string;
}

/** Start the deploy environment: kernel + initrd + command line carrying the machine's parameters. */
export interface DeployPlan {
  kind: 'deploy';
  mac: string;
  image: string;
  kernelUrl: string;
  initrdUrl: string;
  /** Kernel command line, one parameter each (`console=ttyS0`, `bootbox.mac=…`). */
  params: string[];
  message: string;
}

export interface MenuEntry {
  /** Identifier: iPXE label and GRUB menuentry id. */
  key: string;
  /** What the menu line says. */
  label: string;
  plan: LocalPlan | DeployPlan;
}

/** A boot menu; after `timeoutSec` without a key press, the default entry runs. */
export interface MenuPlan {
  kind: 'menu';
  mac: string;
  title: string;
  timeoutSec: number;
  defaultKey: string;
  entries: MenuEntry[];
}

/**
 * Waiting for approval: show the message, sleep, then ask the box again (the same script
 * URL with `?attempt=N+1`). After `retries` attempts, reboot (a fresh PXE cycle, which keeps
 * the node asking) or exit (the firmware tries its next boot device).
 */
export interface WaitPlan {
  kind: 'wait';
  mac: string;
  message: string;
  pollIntervalSec: number;
  /** 1 for the first script of a boot; the box reads it back from `?attempt=`. */
  attempt: number;
  retries: number;
  onTimeout: 'reboot' | 'exit';
}

/** Refused by an administrator: say so, then leave to the firmware's next boot device. */
export interface RejectedPlan {
  kind: 'rejected';
  mac: string;
  message: string;
}

export type ScriptPlan = LocalPlan | DeployPlan | MenuPlan | WaitPlan | RejectedPlan;

/** Renderers' context: where the script being rendered is served from (no query string). */
export interface RenderContext {
  selfUrl: string;
}

/** Seconds a failed deploy or poll shows its message before the node reboots. */
export const FAILURE_DELAY_SEC = 10;
