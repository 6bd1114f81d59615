/**
 * Command-line parsing for `bootbox` (../../shared/CONTRACT.md). Pure: argv in,
 * a command or a usage error out. Every `serve` flag maps to one config key.
 */
import { parseArgs } from 'node:util';
import { BootboxError } from '../core/errors.ts';
import { type ImageCommand, parseImageCommand } from './image-args.ts';

export type Firmware = 'bios' | 'uefi' | 'uefi-pxe' | 'uefi-sb' | 'arm64';
const FIRMWARES: readonly Firmware[] = ['bios', 'uefi', 'uefi-pxe', 'uefi-sb', 'arm64'];

export type Command =
  | { cmd: 'serve'; configFile?: string; lab: boolean; labName: string; overrides: Record<string, unknown> }
  | { cmd: 'version' }
  | { cmd: 'help'; text: string }
  | { cmd: 'lab-up'; name: string; netns?: string }
  | { cmd: 'lab-down'; name: string }
  | {
      cmd: 'lab-node';
      name: string;
      nodeName?: string;
      firmware: Firmware;
      disk?: string;
      mac?: string;
      memory: number;
    }
  | ImageCommand
  | { cmd: 'selftest-raw'; iface: string }
  | { cmd: 'selftest-sendfile' }
  | {
      cmd: 'agent';
      mqtt: string;
      name: string;
      box?: string;
      username?: string;
      password?: string;
      ca?: string;
      dryRun: boolean;
    };

interface FlagDef {
  /** Dotted config key the flag sets. */
  key: string;
  kind: 'string' | 'int' | 'list';
  help: string;
}

/** The `serve` flags and the config keys they set. */
export const SERVE_FLAGS: Record<string, FlagDef> = {
  private: { key: 'privateInterface', kind: 'string', help: 'cluster-side interface; boot services listen here only' },
  uplink: { key: 'uplinkInterface', kind: 'string', help: 'site-side interface (UI/API, MQTT); never boot services' },
  data: { key: 'dataDir', kind: 'string', help: 'state directory: database, logs, rendered files' },
  images: {
    key: 'imagesDir',
    kind: 'string',
    help: 'image store (default: detected image volume, else <data>/images)',
  },
  'boot-dir': { key: 'bootDir', kind: 'string', help: 'files nodes may fetch by TFTP/HTTP (default <images>/boot)' },
  dhcp: { key: 'dhcp.mode', kind: 'string', help: 'full | proxy | auto | off' },
  range: { key: 'dhcp.range', kind: 'string', help: 'address pool for full mode, A.B.C.D-A.B.C.E' },
  'http-port': { key: 'http.port', kind: 'int', help: 'HTTP boot port on the private interface (default 80)' },
  'ui-port': { key: 'ui.port', kind: 'int', help: 'web UI and /api/v1 port (default 8080)' },
  'api-token': { key: 'api.tokens', kind: 'list', help: 'bearer token for /api/v1 (repeatable)' },
  mqtt: { key: 'mqtt.url', kind: 'string', help: 'site broker URL (mqtt:// or mqtts://)' },
  'tftp-port': { key: 'tftp.port', kind: 'int', help: 'TFTP port on the private interface (default 69)' },
  'box-id': { key: 'boxId', kind: 'string', help: 'MQTT box id (default: private NIC MAC)' },
  'log-level': { key: 'log.level', kind: 'string', help: 'debug | info | warn | error' },
};

/** Config key → the flag that sets it, for error messages. */
export const FLAG_OF_KEY: Record<string, string> = Object.fromEntries(
  Object.entries(SERVE_FLAGS).map(([flag, d]) => [d.key, `--${flag}`]),
);

export const USAGE = `usage: bootbox <command> [flags]

commands:
  serve [flags]             run the box in the foreground
  lab up [--lab L] [--netns NS]
                            create the lab switch; prints the interface to serve on
  lab down [--lab L]        remove the lab and its virtual nodes
  lab node [--firmware bios|uefi|uefi-pxe|uefi-sb|arm64] [--name NODE] [--disk FILE]
                            start a QEMU node on the lab switch (serial console on stdout)
  image import FILE|- [--group G] [--kind boot|install] [--name N] [--arch A] [--os windows|linux]
                            add a WIM or a raw disk image (made chunked) to the image store
  image list [--json]       the image catalog
  image scan                rebuild the catalog from the image store
                            (image commands take --config, --data, --images, --lab to find the store)
  version                   print version, architecture and commit
  agent --mqtt URL --name NAME [--box BOXID] [--username U --password P] [--ca FILE] [--dry-run]
                            run the node agent: carry out the box's node actions (wipe-and-reboot)

serve flags:
  --config FILE             JSON config file (flags override it)
  --lab                     serve on the lab switch (runs "lab up" if needed)
${Object.entries(SERVE_FLAGS)
  .map(([f, d]) => `  --${`${f} ${d.kind === 'int' ? 'N' : 'VALUE'}`.padEnd(24)}${d.help}`)
  .join('\n')}
`;

function usageError(message: string): BootboxError {
  return new BootboxError('USAGE', message);
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parse(
  args: string[],
  options: NonNullable<Parameters<typeof parseArgs>[0]>['options'],
): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    // node:util messages read like "Unknown option '--foo'. …"; keep the first sentence.
    const msg = (e as Error).message
      .split('. ')[0]!
      .replace(/^Option '(.+?)' argument missing/, "flag '$1' needs a value");
    throw usageError(msg.charAt(0).toLowerCase() + msg.slice(1));
  }
}

export function parseCommand(argv: string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined || first === 'help' || first === '--help' || first === '-h') {
    return { cmd: 'help', text: USAGE };
  }
  switch (first) {
    case 'version':
    case '--version':
      if (rest.length) throw usageError(`version takes no arguments (got ${rest[0]})`);
      return { cmd: 'version' };
    case 'serve':
      return parseServe(rest);
    case 'lab':
      return parseLab(rest);
    case 'image':
      return parseImageCommand(rest);
    case 'agent':
      return parseAgent(rest);
    case 'selftest': {
      const { values, positionals } = parse(rest, { iface: { type: 'string' } });
      if (positionals[0] === 'sendfile') return { cmd: 'selftest-sendfile' };
      if (positionals[0] !== 'raw') throw usageError('selftest knows only "raw" and "sendfile"');
      return { cmd: 'selftest-raw', iface: (values.iface as string | undefined) ?? 'lo' };
    }
    default:
      throw usageError(`unknown command "${first}" (try: serve, image, lab, agent, version)`);
  }
}

function parseServe(args: string[]): Command {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    config: { type: 'string' },
    lab: { type: 'boolean' },
    'lab-name': { type: 'string' },
    help: { type: 'boolean' },
  };
  for (const [flag, d] of Object.entries(SERVE_FLAGS)) {
    options[flag] = { type: 'string', multiple: d.kind === 'list' };
  }
  const { values, positionals } = parse(args, options);
  if (positionals.length) throw usageError(`serve takes no positional arguments (got "${positionals[0]}")`);
  const overrides: Record<string, unknown> = {};
  for (const [flag, d] of Object.entries(SERVE_FLAGS)) {
    const v = values[flag];
    if (v === undefined) continue;
    let value: unknown = v;
    if (d.kind === 'int') {
      const s = v as string;
      if (!/^\d+$/.test(s)) throw usageError(`--${flag}: must be a whole number (got "${s}")`);
      value = Number(s);
    }
    setPath(overrides, d.key, value);
  }
  return {
    cmd: 'serve',
    configFile: values.config as string | undefined,
    lab: Boolean(values.lab),
    labName: (values['lab-name'] as string | undefined) ?? 'bootbox',
    overrides,
  };
}

function parseLab(args: string[]): Command {
  const [action, ...rest] = args;
  const { values, positionals } = parse(rest, {
    name: { type: 'string' },
    lab: { type: 'string' },
    netns: { type: 'string' },
    firmware: { type: 'string' },
    disk: { type: 'string' },
    mac: { type: 'string' },
    memory: { type: 'string' },
  });
  if (positionals.length) throw usageError(`lab ${action}: unexpected argument "${positionals[0]}"`);
  if (values.name !== undefined && action !== 'node') throw usageError(`lab ${action}: --name is for "lab node"`);
  const name = (values.lab as string | undefined) ?? 'bootbox';
  if (!/^[a-z0-9]{1,8}$/.test(name))
    throw usageError(`lab name must be 1-8 lowercase letters or digits (got "${name}")`);
  switch (action) {
    case 'up':
      return { cmd: 'lab-up', name, netns: values.netns as string | undefined };
    case 'down':
      return { cmd: 'lab-down', name };
    case 'node': {
      const fw = (values.firmware as string | undefined) ?? 'bios';
      if (!(FIRMWARES as readonly string[]).includes(fw)) {
        throw usageError(`--firmware: must be ${FIRMWARES.join(', ')} (got "${fw}")`);
      }
      const memory = values.memory === undefined ? 512 : Number(values.memory);
      if (!Number.isInteger(memory) || memory < 128 || memory > 8192) {
        throw usageError(`--memory: must be MiB from 128 to 8192 (got "${values.memory}")`);
      }
      const nodeName = values.name as string | undefined;
      if (nodeName !== undefined && !/^[a-z0-9-]{1,8}$/.test(nodeName)) {
        throw usageError(`--name: must be 1-8 lowercase letters, digits or - (got "${nodeName}")`);
      }
      return {
        cmd: 'lab-node',
        name,
        nodeName,
        firmware: fw as Firmware,
        disk: values.disk as string | undefined,
        mac: values.mac as string | undefined,
        memory,
      };
    }
    default:
      throw usageError(`lab: unknown action "${action ?? ''}" (try: up, down, node)`);
  }
}

function parseAgent(args: string[]): Command {
  const { values, positionals } = parse(args, {
    mqtt: { type: 'string' },
    name: { type: 'string' },
    box: { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    ca: { type: 'string' },
    'dry-run': { type: 'boolean' },
  });
  if (positionals.length) throw usageError(`agent: unexpected argument "${positionals[0]}"`);
  const mqtt = values.mqtt as string | undefined;
  const name = values.name as string | undefined;
  if (mqtt === undefined) throw usageError('agent: --mqtt URL is required (the broker the box uses)');
  if (name === undefined) throw usageError('agent: --name NAME is required (the machine name the box gave this node)');
  if ((values.password !== undefined) !== (values.username !== undefined)) {
    throw usageError('agent: --username and --password go together');
  }
  const cmd: Extract<Command, { cmd: 'agent' }> = { cmd: 'agent', mqtt, name, dryRun: Boolean(values['dry-run']) };
  for (const k of ['box', 'username', 'password', 'ca'] as const) {
    if (values[k] !== undefined) cmd[k] = values[k] as string;
  }
  return cmd;
}

export function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts.at(-1)!] = value;
}
