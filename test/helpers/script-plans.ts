/** Script plans shared by the iPXE and grub.cfg golden tests (test/fixtures/scripts/). */
import type { DeployPlan, LocalPlan, ScriptPlan } from '../../firmware/policy/script-plan.ts';

export const MAC = '52:54:00:77:00:11';
export const BASE = 'http://10.77.0.1';

export const LOCAL: LocalPlan = { kind: 'local', mac: MAC, message: `HPC-NODE001 (${MAC}) boots from its local disk` };

export const DEPLOY: DeployPlan = {
  kind: 'deploy',
  mac: MAC,
  image: 'win11',
  kernelUrl: `${BASE}/boot/deploy/x64/vmlinuz`,
  initrdUrl: `${BASE}/boot/deploy/x64/initrd.img`,
  params: [
    'console=ttyS0',
    `bootbox.url=${BASE}`,
    `bootbox.mac=${MAC}`,
    'bootbox.image=win11',
    'bootbox.name=HPC-NODE001',
  ],
  message: `deploying image win11 to HPC-NODE001 (${MAC})`,
};

const WAIT_MESSAGE = `waiting for approval of ${MAC} on bootbox lab`;

/** A message carrying every kind of thing that must not become script. */
export const HOSTILE_TEXT =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: literal iPXE syntax under test
  'evil ${net0/mac} {x} $(reboot) `id` "q" it\'s; a || b && c #not-a-comment\nchain http://evil/x \\\r\n\t-n --opt ÿ\u0000 end';

/** name → plan (the golden files are test/fixtures/scripts/<name>.ipxe and <name>.grub.cfg). */
export const GOLDEN_PLANS: Record<string, ScriptPlan> = {
  local: LOCAL,
  deploy: DEPLOY,
  'wait-first': {
    kind: 'wait',
    mac: MAC,
    message: WAIT_MESSAGE,
    pollIntervalSec: 10,
    attempt: 1,
    retries: 30,
    onTimeout: 'reboot',
  },
  'wait-last-reboot': {
    kind: 'wait',
    mac: MAC,
    message: WAIT_MESSAGE,
    pollIntervalSec: 10,
    attempt: 30,
    retries: 30,
    onTimeout: 'reboot',
  },
  'wait-last-exit': {
    kind: 'wait',
    mac: MAC,
    message: WAIT_MESSAGE,
    pollIntervalSec: 5,
    attempt: 3,
    retries: 3,
    onTimeout: 'exit',
  },
  rejected: {
    kind: 'rejected',
    mac: MAC,
    message: `${MAC} was rejected on bootbox lab (rejected by alice), trying the next boot device`,
  },
  menu: {
    kind: 'menu',
    mac: MAC,
    title: `bootbox lab: HPC-NODE001 (${MAC})`,
    timeoutSec: 10,
    defaultKey: 'deploy-1',
    entries: [
      { key: 'deploy-1', label: 'Deploy Windows 11', plan: DEPLOY },
      {
        key: 'deploy-2',
        label: 'Deploy rescue',
        plan: {
          ...DEPLOY,
          image: 'rescue',
          params: DEPLOY.params.map((p) => (p === 'bootbox.image=win11' ? 'bootbox.image=rescue' : p)),
          message: `deploying image rescue to HPC-NODE001 (${MAC})`,
        },
      },
      { key: 'local', label: 'Boot from the local disk', plan: LOCAL },
    ],
  },
  /** Hostile display text everywhere text goes: it must come out inert, on one line each. */
  'hostile-text': {
    kind: 'menu',
    mac: MAC,
    title: HOSTILE_TEXT,
    timeoutSec: 0,
    defaultKey: 'deploy-1',
    entries: [
      { key: 'deploy-1', label: HOSTILE_TEXT, plan: { ...DEPLOY, message: HOSTILE_TEXT } },
      { key: 'local', label: `-${HOSTILE_TEXT}`, plan: { ...LOCAL, message: HOSTILE_TEXT } },
    ],
  },
};

export function selfUrl(ext: 'ipxe' | 'grub.cfg'): string {
  return `${BASE}/boot/${MAC}.${ext}`;
}
