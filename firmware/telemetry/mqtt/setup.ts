/**
 * Builds the MQTT side of the box from its config: the embedded broker when there is
 * no `mqtt.url`, the link (the MqttPort every other module uses) and the telemetry.
 * Nothing starts here; the returned services start in order (broker, link, telemetry)
 * and stop in reverse, and none of them waits for a broker.
 */
import type { Config } from '../../config/schema.ts';
import { readTlsFiles, type TlsMaterial } from '../../config/tls-files.ts';
import type { Clock } from '../../core/clock.ts';
import type { Logger } from '../../core/logger.ts';
import { EmbeddedBroker } from './broker.ts';
import { collectHealth, type HealthSources } from './health.ts';
import { MqttLink } from './link.ts';
import { type EventSource, type MachineSnapshot, Telemetry } from './telemetry.ts';
import { rootFor } from './topics.ts';

export interface MqttService {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): Record<string, unknown>;
}

export interface MqttSetupDeps {
  mqtt: Config['mqtt'];
  boxId: string;
  version: string;
  /** Where the embedded broker listens (the private address and 127.0.0.1). */
  brokerHosts: string[];
  events: EventSource;
  machines: () => MachineSnapshot[];
  health: Omit<HealthSources, 'version'>;
  clock: Clock;
  log: Logger;
  /** TLS files are read with this (tests); default readFileSync. */
  readFile?: (file: string) => Buffer;
}

export interface MqttSetup {
  link: MqttLink;
  broker: EmbeddedBroker | undefined;
  telemetry: Telemetry;
  services: MqttService[];
}

/** Throws a BootboxError naming the key when a TLS file cannot be read. */
export function setupMqtt(d: MqttSetupDeps): MqttSetup {
  const m = d.mqtt;
  const root = rootFor(d.boxId);
  const log = d.log.child('mqtt');
  const tls: TlsMaterial = m.url ? readTlsFiles(m, d.readFile) : {};
  const broker = m.url
    ? undefined
    : new EmbeddedBroker({
        root,
        hosts: d.brokerHosts,
        port: m.broker.port,
        users: m.broker.users,
        log: log.child('broker'),
      });
  const link = new MqttLink({
    root,
    boxId: d.boxId,
    version: d.version,
    ...(broker
      ? { connectStream: () => broker.connectInternal(), inbound: broker.inbound, protocolVersion: 4 as const }
      : { url: m.url, tls, username: m.username, password: m.password }),
    clientId: m.clientId,
    keepaliveSec: m.keepaliveSec,
    eventBuffer: m.eventBuffer,
    statusExtra: () => ({ broker: broker ? 'embedded' : 'site' }),
    clock: d.clock,
    log: log.child('link'),
  });
  const telemetry = new Telemetry({
    port: link,
    events: d.events,
    machines: d.machines,
    health: () => collectHealth({ ...d.health, version: d.version }, d.clock),
    healthIntervalMs: m.healthIntervalSec * 1000,
    clock: d.clock,
    log: log.child('telemetry'),
  });
  const services: MqttService[] = [];
  if (broker) {
    services.push({
      name: 'mqtt-broker',
      start: () => broker.start(),
      stop: () => broker.stop(),
      status: () => broker.status(),
    });
  }
  services.push(
    { name: 'mqtt', start: () => link.start(), stop: () => link.stop(), status: () => link.status() },
    {
      name: 'mqtt-telemetry',
      start: () => telemetry.start(),
      stop: () => telemetry.stop(),
      status: () => telemetry.status(),
    },
  );
  return { link, broker, telemetry, services };
}
