/**
 * The configuration: one schema, used for the JSON config file and for the
 * flags of `bootbox serve` (../../shared/CONTRACT.md). Validation names the
 * offending key (or flag) and never guesses.
 */
import { normalizeMac, parseCidr, parseIPv4, parseRange } from '../core/net.ts';
import { UEFI_X86_FIRST_STAGES, type UefiX86FirstStage } from '../domain/machine.ts';

export type DhcpMode = 'full' | 'proxy' | 'off' | 'auto';

export interface Config {
  privateInterface?: string;
  uplinkInterface?: string;
  dataDir: string;
  imagesDir?: string;
  bootDir?: string;
  boxId?: string;
  dhcp: {
    mode: DhcpMode;
    range?: string;
    leaseTime: number;
    router?: string;
    dns: string[];
    domain?: string;
    /** Subnets behind DHCP relays on the private side, e.g. "10.88.0.0/16". */
    relayNetworks: string[];
    /** Fixed addresses: MAC -> IPv4 (full mode). */
    reservations: Record<string, string>;
  };
  tftp: {
    port: number;
    singlePort: boolean;
    blksizeMax?: number;
    windowsizeMax: number;
    maxTransfers: number;
    maxPerClient: number;
    /** Lock-step transfers: spin up to this long (µs) for the next ACK when it pays off; 0 = never. */
    busyPollUs: number;
  };
  http: { port: number };
  ui: {
    port: number;
    /** The web UI's admin password, plain or `scrypt$N$r$p$salt$hash`; else <data>/admin.json (set up once). */
    adminPassword?: string;
    /** A UI session ends after this many minutes without a request. */
    sessionTtlMin: number;
    /** Read-only API calls (GET) without credentials from the private network and loopback. */
    openReadOnly: boolean;
    /**
     * Names the box is reached by (besides IP addresses, localhost and its host name). Reads
     * without credentials (openReadOnly) answer only requests addressed to one of these: a web
     * page elsewhere cannot point a name of its own at the box and read it (DNS rebinding).
     */
    hostNames?: string[];
    /** HTTPS on ui.port: PEM files of the certificate (chain) and its key. */
    tls?: { cert?: string; key?: string };
  };
  /** Values of the WDS unattend variables %MACHINEDOMAIN% (default dhcp.domain), %ORGNAME%, %TIMEZONE%. */
  unattend: { domain?: string; orgName?: string; timezone?: string };
  /** The image volume (used when imagesDir is not set). */
  images: {
    /** Filesystem label of the image volume. */
    volumeLabel: string;
    /** Pick this device instead of looking for the label. */
    volumeDevice?: string;
    /** Where volumes are mounted (`<root>/<label>`). */
    volumeRoot: string;
    /** Kernel exfat/ntfs3 drivers where present, else FUSE (auto); or force one. */
    volumeDriver: 'auto' | 'kernel' | 'fuse';
  };
  api: { tokens: string[] };
  mqtt: {
    /** MQTT at all (default true). Off: no broker, no link, no telemetry, no commands; the REST wipe is refused. */
    enabled?: boolean;
    /** Site broker (mqtt:// or mqtts://). Without it the box runs its embedded broker. */
    url?: string;
    username?: string;
    password?: string;
    /** PEM files for TLS to the site broker: CA bundle, client certificate and its key. */
    ca?: string;
    cert?: string;
    key?: string;
    /** Default `bootbox-<boxId>`. */
    clientId?: string;
    keepaliveSec: number;
    healthIntervalSec: number;
    /** Events kept while the broker is away (oldest dropped first). */
    eventBuffer: number;
    /** The embedded broker (when there is no `url`). */
    broker: {
      port: number;
      /** username -> password, plain or `scrypt$N$r$p$salt$hash`. */
      users: Record<string, string>;
    };
    /** Who may run which command: command (or "*") -> identities. */
    allow: Record<string, string[]>;
  };
  boot: {
    /** Which machines get an answer: all, only known (registered) ones, or none. */
    answer: 'all' | 'known' | 'none';
    /** Machines never seen before: wait for approval, approve at once, or ignore. */
    unknown: 'approve' | 'auto' | 'ignore';
    /** WDS-style naming policy, e.g. HPC-NODE%03#. */
    namingPattern: string;
    /** UEFI x86 first stage: iPXE (`ipxe.efi`, `snponly.efi`) or the Secure Boot chain (`shim`). */
    uefiX86: UefiX86FirstStage;
    /** UEFI x86 first stage by NIC MAC prefix (`"52:54:00": "snponly.efi"`); the machine's own setting wins. */
    firstStageByVendor: Record<string, UefiX86FirstStage>;
    /** Image per architecture (bios, uefi-x64, arm64-uefi, …). */
    defaultImage: Record<string, string>;
    /** Image per machine group. */
    groupImages: Record<string, string>;
    /** Images known to the boot policy until the image catalog holds them: name -> {title}. */
    images: Record<string, { title?: string }>;
    /** Deploy environment per architecture: kernel and initrd paths in the boot tree (or URLs). */
    deployEnvironments: Record<string, { kernel: string; initrd: string; params?: string[] }>;
    pollIntervalSec: number;
    pollRetries: number;
    onWaitTimeout: 'reboot' | 'exit';
    menu: { enabled: boolean; timeoutSec: number };
  };
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  /** Answer IPv6 router solicitations on the private link with "no router here" (see README). */
  ipv6: { answerRouterSolicitations: boolean };
}

export function defaultConfig(): Config {
  return {
    dataDir: '/var/lib/bootbox',
    dhcp: { mode: 'full', leaseTime: 3600, dns: [], relayNetworks: [], reservations: {} },
    tftp: { port: 69, singlePort: false, windowsizeMax: 64, maxTransfers: 512, maxPerClient: 8, busyPollUs: 50 },
    http: { port: 80 },
    ui: { port: 8080, sessionTtlMin: 60, openReadOnly: false },
    unattend: {},
    images: { volumeLabel: 'BOOTBOX', volumeRoot: '/media/bootbox', volumeDriver: 'auto' },
    api: { tokens: [] },
    mqtt: { keepaliveSec: 30, healthIntervalSec: 30, eventBuffer: 1000, broker: { port: 1883, users: {} }, allow: {} },
    log: { level: 'info' },
    ipv6: { answerRouterSolicitations: true },
    boot: {
      answer: 'all',
      unknown: 'approve',
      namingPattern: 'NODE%03#',
      uefiX86: 'ipxe.efi',
      firstStageByVendor: {},
      defaultImage: {},
      groupImages: {},
      images: {},
      deployEnvironments: {},
      pollIntervalSec: 5,
      pollRetries: 720,
      onWaitTimeout: 'exit',
      menu: { enabled: false, timeoutSec: 10 },
    },
  };
}

type Check = (v: unknown) => string | undefined;
interface FieldSpec {
  check: Check;
}
type ObjectSpec = { [k: string]: FieldSpec | ObjectSpec };

const isSpec = (s: FieldSpec | ObjectSpec): s is FieldSpec => typeof (s as FieldSpec).check === 'function';

const str =
  (test?: (s: string) => string | undefined): Check =>
  (v) => {
    if (typeof v !== 'string') return `must be a string (got ${describe(v)})`;
    if (v.length === 0) return 'must not be empty';
    return test?.(v);
  };
const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
      ? undefined
      : `must be an integer from ${min} to ${max} (got ${describe(v)})`;
const bool: Check = (v) => (typeof v === 'boolean' ? undefined : `must be true or false (got ${describe(v)})`);
const oneOf =
  (...values: string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v)
      ? undefined
      : `must be one of ${values.join(', ')} (got ${describe(v)})`;
const list =
  (item: Check): Check =>
  (v) => {
    if (!Array.isArray(v)) return `must be a list (got ${describe(v)})`;
    for (let i = 0; i < v.length; i++) {
      const e = item(v[i]);
      if (e) return `item ${i + 1} ${e}`;
    }
    return undefined;
  };

const ARCHES = ['bios', 'uefi-ia32', 'uefi-x64', 'arm64-uefi', 'arm32-uefi', 'riscv64-uefi', 'rpi'];
const record =
  (keyCheck: (k: string) => string | undefined, value: Check): Check =>
  (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `must be an object (got ${describe(v)})`;
    for (const [k, x] of Object.entries(v)) {
      const ke = keyCheck(k);
      if (ke) return `key "${k}" ${ke}`;
      const e = value(x);
      if (e) return `"${k}" ${e}`;
    }
    return undefined;
  };
const archKey = (k: string) => (ARCHES.includes(k) ? undefined : `is not an architecture (${ARCHES.join(', ')})`);
const nameKey = (k: string) =>
  /^[A-Za-z0-9._-]{1,64}$/.test(k) ? undefined : 'must be 1-64 letters, digits, . _ or -';
const shape =
  (fields: Record<string, { check: Check; required?: boolean }>): Check =>
  (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `must be an object (got ${describe(v)})`;
    for (const k of Object.keys(v)) if (!Object.hasOwn(fields, k)) return `has an unknown key "${k}"`;
    for (const [k, f] of Object.entries(fields)) {
      const x = (v as Record<string, unknown>)[k];
      if (x === undefined) {
        if (f.required) return `needs "${k}"`;
        continue;
      }
      const e = f.check(x);
      if (e) return `"${k}" ${e}`;
    }
    return undefined;
  };

const ifname = str((s) =>
  /^[A-Za-z0-9_.:@-]{1,15}$/.test(s) ? undefined : `must be a network interface name (got ${JSON.stringify(s)})`,
);
const ipv4 = str((s) =>
  parseIPv4(s) === undefined ? `must be an IPv4 address (got ${JSON.stringify(s)})` : undefined,
);
const cidr = str((s) => (parseCidr(s) ? undefined : `must be a subnet like 10.88.0.0/16 (got ${JSON.stringify(s)})`));
const range = str((s) =>
  parseRange(s) ? undefined : `must be a range like 10.77.0.100-10.77.0.200 (got ${JSON.stringify(s)})`,
);
const port = int(1, 65535);
const mqttUrl = str((s) =>
  /^mqtts?:\/\/[^\s/]+/.test(s) ? undefined : `must be an mqtt:// or mqtts:// URL (got ${JSON.stringify(s)})`,
);

const mqttClientId = str((s) =>
  /^[\x21-\x7e]{1,128}$/.test(s) ? undefined : 'must be 1-128 printable characters without spaces',
);
const mqttUserKey = (k: string) =>
  /^[A-Za-z0-9._@-]{1,64}$/.test(k) ? undefined : 'must be 1-64 letters, digits, . _ @ or -';
/** A plain password, or a hash as made by telemetry/mqtt/password.ts (`scrypt$N$r$p$salt$hash`). */
const mqttSecret = (s: string) =>
  s.startsWith('scrypt$') && !/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/.test(s)
    ? 'is not a valid scrypt$N$r$p$salt$hash password hash'
    : undefined;

/** MAC prefix -> UEFI x86 first stage; prefixes are 3 to 5 octets (an OUI, or a vendor's smaller MA-M/MA-S block). */
const vendorTable: Check = (v) => {
  const e = record(
    (k) =>
      /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){2,4}$/.test(k)
        ? undefined
        : 'is not a MAC prefix of 3 to 5 octets like "52:54:00"',
    oneOf(...UEFI_X86_FIRST_STAGES),
  )(v);
  if (e) return e;
  const seen = new Map<string, string>();
  for (const k of Object.keys(v as object)) {
    const other = seen.get(k.toLowerCase());
    if (other !== undefined) return `keys "${other}" and "${k}" are the same MAC prefix`;
    seen.set(k.toLowerCase(), k);
  }
  return undefined;
};

const SCHEMA: ObjectSpec = {
  privateInterface: { check: ifname },
  uplinkInterface: { check: ifname },
  dataDir: { check: str() },
  imagesDir: { check: str() },
  bootDir: { check: str() },
  boxId: { check: str((s) => (/^[A-Za-z0-9_-]{1,64}$/.test(s) ? undefined : 'must be letters, digits, _ or -')) },
  dhcp: {
    mode: { check: oneOf('full', 'proxy', 'off', 'auto') },
    range: { check: range },
    leaseTime: { check: int(60, 365 * 24 * 3600) },
    router: { check: ipv4 },
    dns: { check: list(ipv4) },
    domain: { check: str() },
    relayNetworks: { check: list(cidr) },
    reservations: {
      check: record((k) => (normalizeMac(k) ? undefined : 'is not a MAC address'), ipv4),
    },
  },
  tftp: {
    port: { check: port },
    singlePort: { check: bool },
    blksizeMax: { check: int(512, 65464) },
    windowsizeMax: { check: int(1, 65535) },
    maxTransfers: { check: int(1, 100000) },
    maxPerClient: { check: int(1, 1000) },
    busyPollUs: { check: int(0, 1000) },
  },
  http: { port: { check: port } },
  ui: {
    port: { check: port },
    adminPassword: {
      check: str((s) =>
        s.startsWith('scrypt$')
          ? mqttSecret(s)
          : [...s].length < 10
            ? 'must be at least 10 characters (or a scrypt$N$r$p$salt$hash hash)'
            : undefined,
      ),
    },
    sessionTtlMin: { check: int(1, 7 * 24 * 60) },
    openReadOnly: { check: bool },
    hostNames: {
      check: list(
        str((s) =>
          /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(s)
            ? undefined
            : 'must be a DNS name such as bootbox.cluster.example',
        ),
      ),
    },
    tls: { cert: { check: str() }, key: { check: str() } },
  },
  unattend: { domain: { check: str() }, orgName: { check: str() }, timezone: { check: str() } },
  images: {
    volumeLabel: {
      check: str((s) =>
        /^[^/\u0000-\u001f]{1,32}$/.test(s)
          ? undefined
          : `must be a filesystem label of 1-32 characters without / (got ${JSON.stringify(s)})`,
      ),
    },
    volumeDevice: {
      check: str((s) =>
        s.startsWith('/dev/') ? undefined : `must be a device path under /dev (got ${JSON.stringify(s)})`,
      ),
    },
    volumeRoot: {
      check: str((s) => (s.startsWith('/') ? undefined : `must be an absolute path (got ${JSON.stringify(s)})`)),
    },
    volumeDriver: { check: oneOf('auto', 'kernel', 'fuse') },
  },
  api: { tokens: { check: list(str((s) => (s.length >= 16 ? undefined : 'must be at least 16 characters'))) } },
  mqtt: {
    enabled: { check: bool },
    url: { check: mqttUrl },
    username: { check: str() },
    password: { check: str() },
    ca: { check: str() },
    cert: { check: str() },
    key: { check: str() },
    clientId: { check: mqttClientId },
    keepaliveSec: { check: int(1, 3600) },
    healthIntervalSec: { check: int(1, 86400) },
    eventBuffer: { check: int(0, 1000000) },
    broker: {
      port: { check: port },
      users: { check: record(mqttUserKey, str(mqttSecret)) },
    },
    allow: {
      check: record(
        (k) => (k === '*' || /^[a-z0-9][a-z0-9-]{0,63}$/.test(k) ? undefined : 'must be a command name or "*"'),
        list(str()),
      ),
    },
  },
  log: { level: { check: oneOf('debug', 'info', 'warn', 'error') } },
  ipv6: { answerRouterSolicitations: { check: bool } },
  boot: {
    answer: { check: oneOf('all', 'known', 'none') },
    unknown: { check: oneOf('approve', 'auto', 'ignore') },
    namingPattern: { check: str() },
    uefiX86: { check: oneOf(...UEFI_X86_FIRST_STAGES) },
    firstStageByVendor: { check: vendorTable },
    defaultImage: { check: record(archKey, str()) },
    groupImages: { check: record(nameKey, str()) },
    images: { check: record(nameKey, shape({ title: { check: str() } })) },
    deployEnvironments: {
      check: record(
        archKey,
        shape({
          kernel: { check: str(), required: true },
          initrd: { check: str(), required: true },
          params: { check: list(str()) },
        }),
      ),
    },
    pollIntervalSec: { check: int(1, 3600) },
    pollRetries: { check: int(1, 100000) },
    onWaitTimeout: { check: oneOf('reboot', 'exit') },
    menu: { enabled: { check: bool }, timeoutSec: { check: int(0, 3600) } },
  },
};

export interface ConfigIssue {
  key: string;
  message: string;
}

/** Checks a partial config object against the schema. Unknown keys are errors. */
export function checkConfig(input: unknown, spec: ObjectSpec = SCHEMA, prefix = ''): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return [{ key: prefix || '(root)', message: `must be an object (got ${describe(input)})` }];
  }
  for (const [k, v] of Object.entries(input)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const s = Object.hasOwn(spec, k) ? spec[k] : undefined;
    if (!s) {
      issues.push({ key, message: 'is not a known configuration key' });
      continue;
    }
    if (isSpec(s)) {
      const e = s.check(v);
      if (e) issues.push({ key, message: e });
    } else {
      issues.push(...checkConfig(v, s, key));
    }
  }
  return issues;
}

/** Deep-merges validated partial configs over the defaults (later wins; lists are replaced). */
export function mergeConfig(base: Config, ...parts: unknown[]): Config {
  const out = structuredClone(base) as unknown as Record<string, unknown>;
  for (const p of parts) mergeInto(out, p as Record<string, unknown>);
  return out as unknown as Config;
}

function mergeInto(target: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(src ?? {})) {
    if (v === undefined) continue;
    const cur = target[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) {
      mergeInto(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      target[k] = v;
    }
  }
}

/** Cross-field rules that a per-key check cannot see. */
export function checkConsistency(c: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (c.uplinkInterface && c.uplinkInterface === c.privateInterface) {
    issues.push({
      key: 'uplinkInterface',
      message: 'must differ from the private interface (privateInterface, --private)',
    });
  }
  const ports: [string, number][] = [
    ['http.port', c.http.port],
    ['ui.port', c.ui.port],
  ];
  if (ports[0]![1] === ports[1]![1]) issues.push({ key: 'ui.port', message: 'must differ from http.port' });
  return issues;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}
