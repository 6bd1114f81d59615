/**
 * The composition root: argv -> config -> board -> services -> servers, plus signals.
 * This is the only module with side effects at the top level.
 */

import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Board, openBoard } from '../board/board.ts';
import { openIcmp6 } from '../board/icmp6-endpoint.ts';
import { resolveRoles } from '../board/interfaces.ts';
import { LAB_ADDRESS, labDown, labNode, labUp } from '../board/lab.ts';
import { RawInterface } from '../board/raw-endpoint.ts';
import { imageRoutes } from './api/images-routes.ts';
import { machineRoutes } from './api/machines-routes.ts';
import { ApiServer } from './api/server.ts';
import { buildApp, type Service } from './app.ts';
import { type Command, FLAG_OF_KEY, parseCommand } from './cli/args.ts';
import { resolveConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { systemClock } from './core/clock.ts';
import { BootboxError, exitCodeOf } from './core/errors.ts';
import { EventBus } from './core/event-bus.ts';
import type { Logger } from './core/logger.ts';
import { createLogger } from './core/logger.ts';
import type { BoxEvents } from './domain/events.ts';
import { seedBootTree } from './images/boot-tree.ts';
import { bootImagesOf } from './images/catalog.ts';
import type { ImageInfo } from './policy/boot-policy.ts';
import { HttpBootServer } from './protocols/http-boot/server.ts';
import { RouterAdvertiser } from './protocols/ndp/server.ts';
import { FileResolver } from './protocols/tftp/file-resolver.ts';
import { TftpServer } from './protocols/tftp/server.ts';
import { BootService } from './services/boot-service.ts';
import { DhcpService } from './services/dhcp-service.ts';
import { ImageService } from './services/image-service.ts';
import { MachineRegistry } from './services/machines.ts';
import { buildInfo, versionLine } from './version.ts';

function fail(e: unknown): never {
  const msg = e instanceof BootboxError ? e.message : ((e as Error)?.stack ?? String(e));
  process.stderr.write(`bootbox: ${msg}\n`);
  process.exit(exitCodeOf(e));
}

/** Default state directory for lab mode: under the checkout, or beside the binary's working dir. */
function labDataDir(): string {
  return buildInfo().bundled ? path.resolve('bootbox-data') : path.resolve(import.meta.dirname, '..', '.data');
}

function ensureWritableDir(dir: string, key: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const probe = path.join(dir, `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new BootboxError('DATA_DIR_UNWRITABLE', `${key} ${dir} is not a writable directory (${code})`);
  }
}

async function serve(cmd: Extract<Command, { cmd: 'serve' }>): Promise<void> {
  const overrides = structuredClone(cmd.overrides);
  const defaults: Record<string, unknown> = {};
  if (cmd.lab) {
    const lab = labUp(cmd.labName);
    overrides.privateInterface ??= lab.interface;
    defaults.dataDir = labDataDir();
  }
  const config: Config = resolveConfig({ configFile: cmd.configFile, overrides, defaults, flagOfKey: FLAG_OF_KEY });
  if (!config.privateInterface) {
    throw new BootboxError(
      'CONFIG_INVALID',
      '"privateInterface" is required: give --private IFACE, set it in the config file, or use --lab',
    );
  }
  ensureWritableDir(config.dataDir, FLAG_OF_KEY.dataDir ? `--data (dataDir)` : 'dataDir');
  const log = createLogger('bootbox', { level: config.log.level });
  const bus = new EventBus<BoxEvents>(log.child('events'));
  const startedAt = Date.now();

  const board: Board = await openBoard({
    privateInterface: config.privateInterface,
    uplinkInterface: config.uplinkInterface,
    relayNetworks: config.dhcp.relayNetworks,
  });
  const priv = board.roles.private;
  const uplink = board.roles.uplink;
  log.info('interfaces', {
    private: `${priv.name} ${priv.ipv4}/${priv.prefix}`,
    uplink: uplink ? `${uplink.name} ${uplink.ipv4 ?? '(no IPv4)'}` : 'none',
  });

  const imagesDir = config.imagesDir ?? path.join(config.dataDir, 'images');
  const bootDir = config.bootDir ?? path.join(imagesDir, 'boot');
  const seeded = seedBootTree(bootDir);
  log.info(`boot tree ${bootDir}`, {
    firstStages: [...seeded.present, ...seeded.copied],
    ...(seeded.missing.length ? { missing: seeded.missing.map((m) => `${m.name} (from ${m.pkg})`) } : {}),
  });

  const info = buildInfo();
  const hosts = [...new Set([uplink?.ipv4, priv.ipv4, '127.0.0.1'].filter((h): h is string => Boolean(h)))];
  const services: Service[] = [];

  // Machines and boot orchestration.
  const registry = new MachineRegistry({
    file: path.join(config.dataDir, 'machines.json'),
    namingPattern: config.boot.namingPattern,
    clock: systemClock,
    log: log.child('machines'),
    events: bus,
  });
  bus.onAny((type, event) => registry.recordEvent(String(type), event as object));
  const images = new ImageService({
    imagesDir,
    dataDir: config.dataDir,
    clock: systemClock,
    log: log.child('images'),
    events: bus,
  });
  // The boot policy reads the catalog per packet: keep its view, rebuilt when the catalog changes.
  let catalogView: ReturnType<typeof bootImagesOf> | undefined;
  const forgetView = () => {
    catalogView = undefined;
  };
  bus.on('catalog.scan', forgetView);
  bus.on('catalog.image', forgetView);
  const boot = new BootService({
    catalogImages: () => {
      if (!catalogView) catalogView = bootImagesOf(images.catalog.deployable());
      return catalogView as Record<string, ImageInfo>;
    },
    boot: config.boot,
    serverAddr: priv.ipv4,
    httpPort: config.http.port,
    boxName: config.boxId ?? priv.mac.replace(/:/g, ''),
    registry,
    events: bus,
    clock: systemClock,
    log: log.child('boot'),
  });
  services.push(images);
  services.push({
    name: 'machines',
    start: () => registry.load(),
    stop: () => registry.close(),
    status: () => ({ count: registry.size }),
  });

  if (config.dhcp.mode !== 'off') {
    services.push(
      new DhcpService({
        dhcp: config.dhcp,
        endpoints: board.raw,
        privateAddress: priv.ipv4,
        privatePrefix: priv.prefix,
        privateMac: priv.mac,
        dataDir: config.dataDir,
        planner: boot,
        events: bus,
        clock: systemClock,
        log,
      }),
    );
  }
  const tftp = new TftpServer({
    factory: board.unicast,
    events: bus,
    bootDir,
    mtu: priv.mtu,
    port: config.tftp.port,
    singlePort: config.tftp.singlePort,
    blksizeMax: config.tftp.blksizeMax,
    windowsizeMax: config.tftp.windowsizeMax,
    maxTransfers: config.tftp.maxTransfers,
    maxPerClient: config.tftp.maxPerClient,
    busyPollUs: config.tftp.busyPollUs,
    clock: systemClock,
    log: log.child('tftp'),
  });
  services.push({
    name: 'tftp',
    start: () => tftp.start(),
    stop: () => tftp.stop(),
    status: () => ({
      listen: `${priv.ipv4}:${tftp.port}`,
      singlePort: config.tftp.singlePort,
      bootDir,
      counters: tftp.counters,
    }),
  });
  const bootFiles = new FileResolver(bootDir);
  const httpBoot = new HttpBootServer({
    host: priv.ipv4,
    port: config.http.port,
    isPeerAllowed: board.isPrivatePeer,
    handlers: boot.handlers(
      async (raw) => {
        const r = await bootFiles.resolve(raw);
        return r.kind === 'ok' ? r : { kind: 'refused', reason: r.reason };
      },
      {
        resolveImageFile: (rel) => images.resolveImageFile(rel),
      },
    ),
    events: bus,
    clock: systemClock,
    log: log.child('http'),
  });
  services.push(httpBoot);
  if (config.ipv6.answerRouterSolicitations) services.push(routerAdvertiser(priv.name, log));

  const tokens = config.api.tokens.length ? config.api.tokens : [localApiToken(config.dataDir, log)];
  services.push(
    new ApiServer({
      port: config.ui.port,
      hosts,
      tokens,
      events: (send) => bus.onAny((type, event) => send(String(type), event)),
      routes: [
        {
          method: 'GET',
          path: '/api/v1/health',
          auth: false,
          handler: () => ({
            status: 200,
            body: {
              version: info.version,
              commit: info.commit,
              arch: info.arch,
              uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
              interfaces: [priv, ...(uplink ? [uplink] : [])].map((i) => ({
                name: i.name,
                role: i.role,
                mac: i.mac,
                ipv4: i.ipv4,
                prefix: i.prefix,
                mtu: i.mtu,
              })),
              services: Object.fromEntries(app.services.map((s) => [s.name, s.status()])),
              counters: { privateInterface: board.raw.stats },
            },
          }),
        },
        ...machineRoutes(registry, () => boot.imageNames()),
        ...imageRoutes(images.catalog, images.uploads),
      ],
    }),
  );
  const app = buildApp({ config, log, clock: systemClock, bus, services });
  try {
    await app.start();
  } catch (e) {
    board.close();
    throw e;
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    await app.stop();
    board.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  const where = `private ${priv.name} ${priv.ipv4}` + (cmd.lab ? ` (lab ${cmd.labName}, nodes: bootbox lab node)` : '');
  log.info(`UI and API on ${hosts.map((h) => `http://${h}:${config.ui.port}`).join(', ')}`);
  process.stdout.write(`bootbox ready: ${where}\n`);
}

/**
 * The "no IPv6 router here" responder (iPXE otherwise waits ~15 s per boot for one). A
 * private interface without IPv6 is not an error: the service then reports itself off.
 */
function routerAdvertiser(ifname: string, log: Logger): Service {
  let ra: RouterAdvertiser | undefined;
  let off = '';
  return {
    name: 'ipv6-ra',
    async start() {
      try {
        const ifindex = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8'));
        ra = new RouterAdvertiser(openIcmp6(ifname, ifindex, ['ff02::2']), systemClock);
        ra.start();
      } catch (e) {
        off = (e as Error).message;
        log.warn(`IPv6 router-solicitation answers are off: ${off}`);
      }
    },
    async stop() {
      ra?.stop();
    },
    status: () => (ra ? { counters: ra.counters } : { off }),
  };
}

/**
 * Without api.tokens in the config, the box makes one token for local use and keeps it
 * in <data>/api-token (mode 0600), so a fresh box can be driven at once by its owner.
 */
function localApiToken(dataDir: string, log: Logger): string {
  const file = path.join(dataDir, 'api-token');
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
  }
  const t = randomBytes(24).toString('hex');
  writeFileSync(file, `${t}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  log.info(`no api.tokens configured: API token written to ${file}`);
  return t;
}

async function selftestRaw(iface: string): Promise<void> {
  const roles = await resolveRoles(iface).catch(() => undefined);
  const address = roles?.private.ipv4 ?? '127.0.0.1';
  const ri = RawInterface.open(iface, address, roles?.private.prefix ?? 8);
  const ep = await ri.open({ port: 0 });
  process.stdout.write(`raw ok ${iface} port ${ep.port}\n`);
  ri.close();
}

async function run(argv: string[]): Promise<void> {
  const cmd = parseCommand(argv);
  switch (cmd.cmd) {
    case 'help':
      process.stdout.write(cmd.text);
      return;
    case 'version':
      process.stdout.write(`${versionLine()}\n`);
      return;
    case 'serve':
      return serve(cmd);
    case 'lab-up': {
      const r = labUp(cmd.name, { boxNetns: cmd.netns });
      process.stdout.write(`${r.interface}\n`);
      process.stderr.write(
        `lab "${cmd.name}" ${r.created ? 'created' : 'is up'}: serve on ${r.interface} (${LAB_ADDRESS}/24), switch namespace ${r.netns}\n`,
      );
      return;
    }
    case 'lab-down': {
      const removed = labDown(cmd.name);
      process.stderr.write(removed ? `lab "${cmd.name}" removed\n` : `lab "${cmd.name}" was not up\n`);
      return;
    }
    case 'lab-node': {
      const code = await labNode({
        lab: cmd.name,
        nodeName: cmd.nodeName ?? `node${process.pid % 1000}`,
        firmware: cmd.firmware,
        disk: cmd.disk,
        mac: cmd.mac,
        memory: cmd.memory,
      });
      process.exit(code);
      return;
    }
    case 'selftest-raw':
      return selftestRaw(cmd.iface);
  }
}

run(process.argv.slice(2)).catch(fail);
