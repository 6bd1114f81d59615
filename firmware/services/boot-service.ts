/**
 * Boot orchestration: the one place that turns "a node asked" into "what it gets".
 * DHCP asks through the BootPlanner port (first stage), the HTTP boot server asks for
 * scripts (local, deploy, wait, rejected, menu) and hands over node reports. The rules
 * are the pure policy (policy/boot-policy.ts); this service feeds it the machine record
 * and settings and applies the lifecycle effects it returns.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { formatIPv4, normalizeMac, parseIPv4 } from '../core/net.ts';
import type { Machine, MachineArch, MachineEvent } from '../domain/machine.ts';
import {
  type BootDecision,
  type BootSettings,
  decideBoot,
  type ImageInfo,
  resolveImage,
} from '../policy/boot-policy.ts';
import { renderGrubBootstrap, renderGrubCfg } from '../policy/grub-cfg.ts';
import { renderIpxeScript } from '../policy/ipxe-script.ts';
import type { ScriptPlan } from '../policy/script-plan.ts';
import type { ClientInfo } from '../protocols/dhcp/classify.ts';
import type { BootPlan, BootPlanner } from '../protocols/dhcp/responder.ts';
import type { HttpBootHandlers, ScriptAnswer } from '../protocols/http-boot/server.ts';
import type { MachineRegistry } from './machines.ts';

export interface BootEventMap {
  'boot.decision': {
    ts: string;
    mac: string;
    phase: 'dhcp' | 'script';
    action: string;
    reason: string;
    file?: string;
    image?: string;
  };
  'boot.report': { ts: string; mac: string; state: string; accepted: boolean; reason?: string; peer: string };
}

export interface BootEventSink {
  emit<K extends keyof BootEventMap>(type: K, event: BootEventMap[K]): void;
}

export interface BootServiceOptions {
  boot: Config['boot'];
  serverAddr: string;
  httpPort: number;
  /** The TFTP server's port (default 69); GRUB reaches only 69. */
  tftpPort?: number;
  boxName: string;
  registry: MachineRegistry;
  events: BootEventSink;
  clock: Clock;
  log: Logger;
  /** Deployable images of the image catalog, beside the configured `boot.images` (called per plan: keep it cheap). */
  catalogImages?: () => Record<string, ImageInfo>;
}

const DHCP_DISCOVER = 1;

/** TFTP names of the files GRUB asks for: its prefix's grub.cfg, and a machine's own (with a wait poll's attempt). */
const GRUB_BOOTSTRAP = 'grub/grub.cfg';
const GRUB_MACHINE = /^([0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5})\.grub\.cfg(?:\?attempt=(\d{1,5}))?$/;

export class BootService implements BootPlanner {
  private readonly o: BootServiceOptions;
  private settings: BootSettings;
  private readonly nextServer: number;
  /** The boot tree over TFTP, e.g. tftp://10.77.0.1 (GRUB fetches the box's files this way). */
  private readonly tftpBase: string;
  /** Per-deploy tokens: the deploy environment echoes its token when it reports. */
  private readonly tokens = new Map<string, string>();

  constructor(o: BootServiceOptions) {
    this.o = o;
    const httpBase = o.httpPort === 80 ? `http://${o.serverAddr}` : `http://${o.serverAddr}:${o.httpPort}`;
    this.nextServer = parseIPv4(o.serverAddr)!;
    const tftpPort = o.tftpPort ?? 69;
    this.tftpBase = tftpPort === 69 ? `tftp://${o.serverAddr}` : `tftp://${o.serverAddr}:${tftpPort}`;
    const b = o.boot;
    this.settings = {
      answer: b.answer,
      unknown: b.unknown,
      httpBase,
      boxName: o.boxName,
      uefiX86: b.uefiX86,
      firstStageByVendor: b.firstStageByVendor,
      defaultImage: b.defaultImage as BootSettings['defaultImage'],
      groupImages: b.groupImages,
      images: b.images,
      deployEnvironments: b.deployEnvironments as BootSettings['deployEnvironments'],
      pollIntervalSec: b.pollIntervalSec,
      pollRetries: b.pollRetries,
      onWaitTimeout: b.onWaitTimeout,
      menu: b.menu,
    };
  }

  /** Puts changed policy settings into service (Settings in the UI): the next decision uses them. */
  applyPolicy(p: Pick<Config['boot'], 'unknown' | 'defaultImage'>): void {
    this.settings = {
      ...this.settings,
      unknown: p.unknown,
      defaultImage: p.defaultImage as BootSettings['defaultImage'],
    };
  }

  /** The settings with the catalog's images as they are now (configured `boot.images` win on a clash). */
  private current(): BootSettings {
    const extra = this.o.catalogImages?.();
    return extra ? { ...this.settings, images: { ...extra, ...this.settings.images } } : this.settings;
  }

  /** The image a machine deploys next (reimage, its own, its group's, its architecture's default). */
  imageOf(m: Machine): string | undefined {
    return resolveImage(m, m.arch, this.settings)?.image;
  }

  /** Every image name a machine may be given (configured and catalog). */
  imageNames(): string[] {
    return Object.keys(this.current().images);
  }

  // -- DHCP: the BootPlanner port --------------------------------------------------

  plan(client: ClientInfo): BootPlan | null {
    const reg = this.o.registry;
    const machine = reg.get(client.mac);
    const decision = decideBoot(
      {
        phase: 'dhcp',
        client: {
          mac: client.mac,
          arch: client.arch as MachineArch,
          isIpxe: client.isIpxe,
          isHttpBoot: client.isHttpBoot,
        },
        machine,
        newName: machine ? undefined : reg.peekName(client.mac),
      },
      this.current(),
    );
    const firstOfBoot = client.messageType === DHCP_DISCOVER;
    if (decision.action === 'ignore') {
      if (firstOfBoot) this.emitDecision(client.mac, 'dhcp', decision);
      return null;
    }
    if (decision.action !== 'first-stage') return null;
    this.applyEffects(client, decision);
    const stage = decision.stage;
    const file = stage.kind === 'tftp' ? stage.file : stage.url;
    if (firstOfBoot) {
      reg.recordBoot(client.mac, {
        action: stage.kind === 'ipxe-script' ? 'ipxe-script' : 'first-stage',
        file,
        arch: client.arch as MachineArch,
        firmware: client.firmware,
        uuid: client.uuid,
      });
      this.emitDecision(client.mac, 'dhcp', decision, file);
    }
    switch (stage.kind) {
      case 'tftp':
        return { nextServer: this.nextServer, bootFile: stage.file };
      case 'http':
        return { nextServer: this.nextServer, bootFile: stage.url, httpUrl: stage.url };
      case 'ipxe-script':
        return { nextServer: this.nextServer, bootFile: stage.url };
    }
  }

  // -- HTTP boot ----------------------------------------------------------------------

  private script(mac: string, attempt: number, selfUrl: string, kind: 'ipxe' | 'grub'): ScriptAnswer {
    const reg = this.o.registry;
    const machine = reg.get(mac);
    const decision = decideBoot(
      {
        phase: 'script',
        client: { mac, arch: 'unknown', isIpxe: kind === 'ipxe', isHttpBoot: false },
        machine,
        attempt,
        newName: machine ? undefined : reg.peekName(mac),
      },
      this.current(),
    );
    if (decision.action !== 'script') {
      const reason = decision.action === 'ignore' ? decision.reason : 'no script for this machine';
      this.emitDecision(mac, 'script', decision);
      const body =
        kind === 'ipxe'
          ? `#!ipxe\necho bootbox: no boot answer for ${mac}\nsleep 5\nexit 1\n`
          : `echo "bootbox: no boot answer for ${mac}"\nsleep 5\nexit\n`;
      this.o.log.debug(`script for ${mac}: ${reason}`);
      return { status: 404, body };
    }
    this.applyEffects({ mac, arch: 'unknown', firmware: 'unknown' }, decision);
    const plan = this.withToken(decision.plan);
    const rendered =
      kind === 'ipxe'
        ? renderIpxeScript(plan, { selfUrl })
        : renderGrubCfg(plan, {
            selfUrl,
            bootTree: { http: `${this.settings.httpBase}/boot/`, tftp: `${this.tftpBase}/` },
          });
    if (rendered instanceof BootboxError) {
      this.o.log.error(`cannot render the ${kind} script for ${mac}: ${rendered.message}`);
      return { status: 500, body: kind === 'ipxe' ? '#!ipxe\necho bootbox: script error\nexit 1\n' : 'exit\n' };
    }
    this.emitDecision(mac, 'script', decision, undefined, plan.kind === 'deploy' ? plan.image : undefined);
    return { status: 200, body: rendered };
  }

  /** A deploy gets a fresh token on its kernel command line; the report must carry it. */
  private withToken(plan: ScriptPlan): ScriptPlan {
    if (plan.kind !== 'deploy') return plan;
    const token = randomBytes(12).toString('hex');
    this.tokens.set(plan.mac, token);
    return { ...plan, params: [...plan.params, `bootbox.token=${token}`] };
  }

  private report(mac: string, body: unknown, peer: string): { status: number; body: unknown } {
    // Stamped when each event is emitted: a `deployed` report changes the state first, and the
    // timeline must stay in time order (the state change's stamp is taken in between).
    const ts = () => this.o.clock.date().toISOString();
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const fail = (status: number, code: string, message: string) => {
      this.o.events.emit('boot.report', {
        ts: ts(),
        mac,
        state: String(b.state ?? ''),
        accepted: false,
        reason: message,
        peer,
      });
      return { status, body: { error: { code, message } } };
    };
    if (b.state !== 'deployed' && b.state !== 'progress' && b.state !== 'failed') {
      return fail(400, 'INVALID_REQUEST', 'state must be "deployed", "progress" or "failed"');
    }
    const machine = this.o.registry.get(mac);
    if (!machine) return fail(404, 'NOT_FOUND', `no machine ${mac}`);
    const want = this.tokens.get(mac);
    if (!want || b.token !== want) return fail(403, 'FORBIDDEN', "the report does not carry this deploy's token");
    if (b.state === 'progress') {
      this.o.events.emit('boot.report', { ts: ts(), mac, state: 'progress', accepted: true, peer });
      return { status: 200, body: { ok: true } };
    }
    if (b.state === 'failed') {
      this.o.events.emit('boot.report', {
        ts: ts(),
        mac,
        state: 'failed',
        accepted: true,
        reason: String(b.reason ?? ''),
        peer,
      });
      return { status: 200, body: { ok: true } };
    }
    const r = this.o.registry.apply(mac, { type: 'deployed' });
    if (r instanceof BootboxError) return fail(409, r.code, r.message);
    this.tokens.delete(mac);
    const ip = parseIPv4(peer);
    if (ip !== undefined) this.o.registry.recordBoot(mac, { action: 'deployed', ip: formatIPv4(ip) });
    this.o.events.emit('boot.report', { ts: ts(), mac, state: 'deployed', accepted: true, peer });
    return { status: 200, body: { ok: true, state: r.machine.state, name: r.machine.name } };
  }

  handlers(
    resolveFile: HttpBootHandlers['resolveFile'],
    more: Partial<Pick<HttpBootHandlers, 'resolveImageFile' | 'unattend' | 'nodeAction'>> = {},
  ): HttpBootHandlers {
    return {
      ...more,
      resolveFile,
      ipxeScript: (mac, attempt, self) => this.script(mac, attempt, self, 'ipxe'),
      grubCfg: (mac, attempt, self) => this.script(mac, attempt, self, 'grub'),
      grubBootstrap: () => this.grubBootstrap(),
      report: (mac, body, peer) => this.report(mac, body, peer),
    };
  }

  private grubBootstrap(): ScriptAnswer {
    const r = renderGrubBootstrap(this.tftpBase);
    if (r instanceof BootboxError) {
      this.o.log.error(`cannot render grub/grub.cfg: ${r.message}`);
      return { status: 500, body: 'exit\n' };
    }
    return { status: 200, body: r };
  }

  // -- TFTP: the files GRUB asks for ----------------------------------------------------

  /**
   * The TFTP server's generated files (TftpServerOptions.generated): GRUB's `grub/grub.cfg`,
   * which hands over to `<mac>.grub.cfg`, the machine's own script (the same answer as the
   * HTTP `/boot/<mac>.grub.cfg`; a wait poll adds `?attempt=N`). Anything else is undefined:
   * the boot tree answers.
   */
  tftpFile(filename: string): Buffer | undefined {
    const name = filename.replace(/\\/g, '/').replace(/^\/+/, '');
    if (name === GRUB_BOOTSTRAP) return Buffer.from(this.grubBootstrap().body);
    const m = GRUB_MACHINE.exec(name);
    if (!m) return undefined;
    const mac = normalizeMac(m[1]!);
    if (!mac) return undefined;
    const attempt = Math.min(10_000, Math.max(1, Number(m[2] ?? 1)));
    return Buffer.from(this.script(mac, attempt, `${this.tftpBase}/${mac}.grub.cfg`, 'grub').body);
  }

  // -- effects ------------------------------------------------------------------------

  private applyEffects(
    client: { mac: string; arch: string; firmware: string; uuid?: string },
    d: Extract<BootDecision, { effects: MachineEvent[] }>,
  ): void {
    const reg = this.o.registry;
    if (d.createMachine && !reg.get(client.mac)) {
      reg.create({
        mac: client.mac,
        arch: client.arch as MachineArch,
        firmware: client.firmware as 'bios',
        ...(client.uuid ? { uuid: client.uuid } : {}),
      });
    }
    for (const e of d.effects) {
      const r = reg.apply(client.mac, e);
      // The planner is asked several times per boot; a repeated effect is refused harmlessly.
      if (r instanceof BootboxError && r.code !== 'INVALID_STATE')
        this.o.log.warn(`boot effect ${e.type} for ${client.mac}: ${r.message}`);
    }
  }

  private emitDecision(mac: string, phase: 'dhcp' | 'script', d: BootDecision, file?: string, image?: string): void {
    this.o.events.emit('boot.decision', {
      ts: this.o.clock.date().toISOString(),
      mac,
      phase,
      action: d.action === 'script' ? d.plan.kind : d.action,
      reason: d.reason,
      ...(file ? { file } : {}),
      ...(image ? { image } : {}),
    });
  }
}
