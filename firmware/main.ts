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
import { loadSendfileAddon, sendfileSelftest } from '../board/sendfile-addon.ts';
import { freeSpace, VolumeManager } from '../board/storage/volumes.ts';
import { runAgent } from './agent/agent.ts';
import { AdminAccount } from './api/auth.ts';
import { imageRoutes } from './api/images-routes.ts';
import { machineRoutes } from './api/machines-routes.ts';
import { ApiServer, errorBody } from './api/server.ts';
import { leafKeys, readSettingsOverlay, settingsRoutes, withOverlay } from './api/settings-routes.ts';
import { unattendRoutes } from './api/unattend-routes.ts';
import { buildApp, type Service } from './app.ts';
import { type Command, FLAG_OF_KEY, parseCommand } from './cli/args.ts';
import { resolveConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { readTlsFiles } from './config/tls-files.ts';
import { systemClock } from './core/clock.ts';
import { BootboxError, exitCodeOf } from './core/errors.ts';
import { EventBus } from './core/event-bus.ts';
import type { Logger } from './core/logger.ts';
import { createLogger } from './core/logger.ts';
import type { BoxEvents } from './domain/events.ts';
import { seedBootTree } from './images/boot-tree.ts';
import { bootImagesOf } from './images/catalog.ts';
import { API_SOCKET, PID_FILE, runImageCommand } from './images/image-cli.ts';
import { unattendHandler } from './images/unattend-route.ts';
import { UnattendStore } from './images/unattend-store.ts';
import type { ImageInfo } from './policy/boot-policy.ts';
import { HttpBootServer } from './protocols/http-boot/server.ts';
import { RouterAdvertiser } from './protocols/ndp/server.ts';
import { FileResolver } from './protocols/tftp/file-resolver.ts';
import { TftpServer } from './protocols/tftp/server.ts';
import { AuditLog } from './services/audit.ts';
import { BootService } from './services/boot-service.ts';
import { DhcpService } from './services/dhcp-service.ts';
import { ImageService } from './services/image-service.ts';
import { MachineRegistry } from './services/machines.ts';
import { CommandService, wipeScriptHandler } from './telemetry/mqtt/commands.ts';
import { guessImageOs } from './telemetry/mqtt/node-actions.ts';
import { setupMqtt } from './telemetry/mqtt/setup.ts';
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
    // A lab is a private playground: its read-only API is open to the lab switch and loopback.
    defaults.ui = { openReadOnly: true };
  }
  const baseConfig: Config = resolveConfig({ configFile: cmd.configFile, overrides, defaults, flagOfKey: FLAG_OF_KEY });
  if (!baseConfig.privateInterface) {
    throw new BootboxError(
      'CONFIG_INVALID',
      '"privateInterface" is required: give --private IFACE, set it in the config file, or use --lab',
    );
  }
  ensureWritableDir(baseConfig.dataDir, FLAG_OF_KEY.dataDir ? `--data (dataDir)` : 'dataDir');
  // Settings changed in the web UI (<data>/settings.json) go over the config file; flags still win.
  const settingsFile = path.join(baseConfig.dataDir, 'settings.json');
  const settingsOverlay = readSettingsOverlay(settingsFile);
  const flagKeys = leafKeys(overrides);
  const config: Config = withOverlay(baseConfig, settingsOverlay, flagKeys);
  if (!config.privateInterface) throw new BootboxError('CONFIG_INVALID', '"privateInterface" is required');
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

  const volume = await imageVolume(config, bus, log);
  const imagesDir = config.imagesDir ?? volume?.mountpoint ?? path.join(config.dataDir, 'images');
  const bootDir = config.bootDir ?? path.join(imagesDir, 'boot');
  const seeded = seedBootTree(bootDir);
  log.info(`boot tree ${bootDir}`, {
    firstStages: [...seeded.present, ...seeded.copied],
    ...(seeded.missing.length ? { missing: seeded.missing.map((m) => `${m.name} (from ${m.pkg})`) } : {}),
  });
  if (seeded.unwritable) log.warn(`boot tree not seeded: ${seeded.unwritable}`);

  const info = buildInfo();
  const boxId = config.boxId ?? priv.mac.replace(/:/g, '');
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
  if (volume) images.catalog.setVolumeState(volume.state());
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
    tftpPort: config.tftp.port,
    boxName: boxId,
    registry,
    events: bus,
    clock: systemClock,
    log: log.child('boot'),
  });
  if (volume) {
    // The catalog follows the volume: unavailable (with the reason) while it is away, rescanned when back.
    bus.on('volume.state', () => {
      const v = volume.state();
      images.catalog.setVolumeState(
        v.state === 'attached'
          ? { state: 'attached' }
          : { state: v.state, reason: v.reason ?? `image volume is ${v.state}` },
      );
    });
    services.push({
      name: 'volume',
      start: async () => {},
      stop: () => volume.stop(),
      status: () => ({ ...volume.state(), mountpoint: volume.mountpoint, volume: volume.volume() ?? null }),
    });
  }
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
    // GRUB's grub.cfg files (its bootstrap and each machine's own) come from the boot service.
    generated: (name) => boot.tftpFile(name),
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
  const wipeScript = wipeScriptHandler({ get: (id) => registry.get(id), boxId });
  const unattend = new UnattendStore({
    imagesDir,
    machine: (mac) => registry.get(mac),
    imageFor: (m) => boot.imageOf(m),
    imageFile: (name) => {
      const i = images.catalog.get(name);
      return i ? path.join(imagesDir, i.source.file) : undefined;
    },
    settings: () => ({
      ...((config.unattend.domain ?? config.dhcp.domain)
        ? { domain: config.unattend.domain ?? config.dhcp.domain }
        : {}),
      ...(config.unattend.orgName ? { orgName: config.unattend.orgName } : {}),
      ...(config.unattend.timezone ? { timezone: config.unattend.timezone } : {}),
      boxUrl: config.http.port === 80 ? `http://${priv.ipv4}` : `http://${priv.ipv4}:${config.http.port}`,
    }),
  });
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
        unattend: unattendHandler({ store: unattend, log: log.child('unattend') }),
        nodeAction: (machine, file) => {
          if (file !== 'wipe.cmd') return { status: 404, body: `no action ${file}: ask for wipe.cmd\n` };
          const r = wipeScript(machine);
          return {
            status: r.status,
            body: r.body,
            contentType: r.headers['Content-Type'] ?? r.headers['content-type'],
          };
        },
      },
    ),
    events: bus,
    clock: systemClock,
    log: log.child('http'),
    loadSendfile: loadSendfileAddon,
  });
  services.push(httpBoot);
  if (config.ipv6.answerRouterSolicitations) services.push(routerAdvertiser(priv.name, log));

  // MQTT: telemetry out, commands in (the embedded broker when no site broker is configured);
  // none of it with mqtt.enabled false.
  const mqtt =
    config.mqtt.enabled === false
      ? undefined
      : setupMqtt({
          mqtt: config.mqtt,
          boxId,
          version: info.version,
          brokerHosts: hosts,
          events: bus,
          machines: () =>
            registry
              .list()
              .map((m) => ({ mac: m.mac, name: m.name, state: m.state, reason: m.stateReason, since: m.stateSince })),
          health: {
            startedAt: systemClock.now(),
            dirs: [
              { name: 'data', path: config.dataDir },
              { name: 'images', path: imagesDir },
            ],
            interfaces: [
              { name: priv.name, role: 'private' },
              ...(uplink ? [{ name: uplink.name, role: 'uplink' }] : []),
            ],
            servicesStatus: () => Object.fromEntries(app.services.map((s) => [s.name, s.status()])),
          },
          clock: systemClock,
          log,
        });
  const audit = new AuditLog({
    file: path.join(config.dataDir, 'audit.json'),
    clock: systemClock,
    log: log.child('audit'),
  });
  const imageOs = (image: string) => {
    const c = images.catalog.get(image);
    return guessImageOs(image, {
      ...(c?.os ? { os: c.os } : {}),
      title: c?.description ?? config.boot.images[image]?.title,
    });
  };
  const commands = mqtt
    ? new CommandService({
        port: mqtt.link,
        registry,
        boxId,
        audit,
        clock: systemClock,
        log: log.child('mqtt.commands'),
        images: () => boot.imageNames(),
        allow: config.mqtt.allow,
        imageOs,
        imageOf: (m) => boot.imageOf(m),
      })
    : undefined;
  const tokens = config.api.tokens.length ? config.api.tokens : [localApiToken(config.dataDir, log)];
  // The web UI's admin: ui.adminPassword, else <data>/admin.json, else a one-time setup token.
  const admin = new AdminAccount({
    configured: config.ui.adminPassword,
    file: path.join(config.dataDir, 'admin.json'),
    clock: systemClock,
    log: log.child('ui'),
  });
  admin.load();
  // The UI bundle: web-ui/dist in a checkout; beside the binary (web-ui/) in a bundled build.
  const uiDir = info.bundled
    ? path.join(path.dirname(process.execPath), 'web-ui')
    : path.resolve(import.meta.dirname, '..', 'web-ui', 'dist');
  services.push({
    name: 'audit',
    start: () => audit.load(),
    stop: () => audit.close(),
    status: () => ({ entries: audit.size }),
  });
  // HTTPS on the UI port with ui.tls (both files, PEM); a bad file stops the start, naming the key.
  let uiTls: { cert: Buffer; key: Buffer } | undefined;
  if (config.ui.tls?.cert || config.ui.tls?.key) {
    const m = readTlsFiles({ cert: config.ui.tls.cert, key: config.ui.tls.key }, undefined, 'ui.tls');
    uiTls = { cert: m.cert!, key: m.key! };
  }
  const uiScheme = uiTls ? 'https' : 'http';
  const apiSocket = path.join(config.dataDir, API_SOCKET);
  services.push(
    new ApiServer({
      port: config.ui.port,
      hosts,
      tokens,
      admin,
      sessionTtlMin: config.ui.sessionTtlMin,
      openReadOnly: config.ui.openReadOnly,
      ...(config.ui.hostNames ? { hostNames: config.ui.hostNames } : {}),
      ...(uiTls ? { tls: uiTls } : {}),
      sessionsFile: path.join(config.dataDir, 'sessions.json'),
      // `bootbox image` talks to the running box here (Unix socket paths are short: ~100 bytes)
      ...(Buffer.byteLength(apiSocket) < 100 ? { socketPath: apiSocket } : {}),
      isPrivatePeer: board.isPrivatePeer,
      uiDir,
      // JSON bodies: unattend templates may be up to 1 MiB of text
      maxBodyBytes: 2 * 1024 * 1024,
      audit,
      version: info.version,
      clock: systemClock,
      log: log.child('api'),
      events: (send) => bus.onAny((type, event) => send(String(type), event)),
      routes: [
        {
          method: 'GET',
          path: '/api/v1/health',
          auth: false,
          public: true,
          summary: 'Version, uptime, interfaces with their roles, volumes and free space, services and counters',
          handler: async () => ({
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
              volumes: await Promise.all(
                [
                  { name: 'data', path: config.dataDir },
                  { name: 'images', path: imagesDir, ...images.catalog.volumeState() },
                ].map(async (v) => ({ ...v, ...(await diskSpace(v.path)) })),
              ),
              services: Object.fromEntries(app.services.map((s) => [s.name, s.status()])),
              counters: { privateInterface: board.raw.stats },
            },
          }),
        },
        ...machineRoutes(
          registry,
          () => boot.imageNames(),
          commands &&
            ((mac, image, actor) => {
              const r = commands.invoke(
                'reimage',
                {
                  transaction: randomBytes(8).toString('hex'),
                  targets: { mac },
                  mode: 'wipe',
                  ...(image ? { image } : {}),
                },
                actor,
              );
              return r.status === 'ok' ? { status: 200, body: r.data } : errorBody(r.error!.code, r.error!.message);
            }),
        ),
        ...imageRoutes(images.catalog, images.uploads),
        ...unattendRoutes(unattend, images.catalog),
        ...settingsRoutes({
          file: settingsFile,
          base: baseConfig,
          running: config,
          overlay: settingsOverlay,
          fixed: flagKeys,
          // The boot policy keys go into service at once: the next boot decision uses them.
          apply: (next) => {
            registry.setNamingPattern(next.boot.namingPattern);
            boot.applyPolicy(next.boot);
          },
          log: log.child('settings'),
        }),
      ],
    }),
  );
  if (mqtt && commands) {
    services.push(...mqtt.services);
    services.push(commands);
  } else log.info('MQTT is off (mqtt.enabled is false): no broker, telemetry or commands');
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
    rmSync(path.join(config.dataDir, PID_FILE), { force: true });
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  writeFileSync(path.join(config.dataDir, PID_FILE), `${process.pid}\n`);
  const where = `private ${priv.name} ${priv.ipv4}` + (cmd.lab ? ` (lab ${cmd.labName}, nodes: bootbox lab node)` : '');
  log.info(`UI and API on ${hosts.map((h) => `${uiScheme}://${h}:${config.ui.port}`).join(', ')}`);
  const setupToken = admin.setupToken;
  let setup = '';
  if (setupToken) {
    const url = `${uiScheme}://${hosts[0]}:${config.ui.port}/`;
    log.warn(`no admin password yet: open ${url} and give the setup token ${setupToken} to set one`);
    setup = `, setup token ${setupToken} (open ${url} to set the admin password)`;
  }
  process.stdout.write(`bootbox ready: ${where}${setup}\n`);
}

/**
 * Free and total bytes of the file system holding `dir`, or nulls when it cannot be read or
 * does not answer within a second (a volume gone, a stuck FUSE mount: never wait on it).
 */
async function diskSpace(dir: string): Promise<{ freeBytes: number | null; totalBytes: number | null }> {
  const none = { freeBytes: null, totalBytes: null };
  let timer: NodeJS.Timeout | undefined;
  try {
    const s = await Promise.race([
      freeSpace(dir),
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), 1000);
      }),
    ]);
    return s ? { freeBytes: s.free, totalBytes: s.total } : none;
  } catch {
    return none;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The image volume: with no imagesDir configured, the drive labelled images.volumeLabel (or
 * images.volumeDevice) holds the image store. Without one at start, images live in
 * <data>/images and no volume is watched.
 */
async function imageVolume(config: Config, bus: EventBus<BoxEvents>, log: Logger): Promise<VolumeManager | undefined> {
  if (config.imagesDir) return undefined;
  const vm = new VolumeManager({
    label: config.images.volumeLabel,
    ...(config.images.volumeDevice ? { device: config.images.volumeDevice } : {}),
    root: config.images.volumeRoot,
    driver: config.images.volumeDriver,
    clock: systemClock,
    log: log.child('volume'),
    events: bus,
  });
  await vm.start();
  const st = vm.state();
  if (st.state === 'attached' || config.images.volumeDevice) {
    log.info(`image volume ${config.images.volumeDevice ?? config.images.volumeLabel}: ${st.state}`, {
      mountpoint: vm.mountpoint,
      ...(st.state !== 'attached' ? { reason: st.reason } : {}),
    });
    return vm;
  }
  await vm.stop();
  log.info(
    `no image volume labelled ${config.images.volumeLabel}: images are kept in ${path.join(config.dataDir, 'images')}`,
  );
  return undefined;
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
    case 'selftest-sendfile':
      process.stdout.write(`${await sendfileSelftest()}\n`);
      return;
    case 'agent':
      return runAgent(cmd);
    case 'image-import':
    case 'image-list':
    case 'image-scan': {
      const overrides: Record<string, unknown> = {};
      if (cmd.store.dataDir) overrides.dataDir = cmd.store.dataDir;
      if (cmd.store.imagesDir) overrides.imagesDir = cmd.store.imagesDir;
      const config = resolveConfig({
        configFile: cmd.store.configFile,
        overrides,
        defaults: cmd.store.lab ? { dataDir: labDataDir() } : {},
        flagOfKey: FLAG_OF_KEY,
      });
      return runImageCommand(cmd, config, (s) => process.stdout.write(s));
    }
  }
}

run(process.argv.slice(2)).catch(fail);
