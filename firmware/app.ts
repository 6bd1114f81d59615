/**
 * buildApp(deps) -> { start(), stop() }. Nothing happens on import or in the
 * constructor: start() opens every enabled service in order, stop() closes them in
 * reverse. A service that fails to start stops the ones already started, so nothing is
 * left half-started.
 */
import type { Config } from './config/schema.ts';
import type { Clock } from './core/clock.ts';
import type { EventBus } from './core/event-bus.ts';
import type { Logger } from './core/logger.ts';
import type { BoxEvents } from './domain/events.ts';

export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Listening addresses and counters for /api/v1/health and telemetry. */
  status(): Record<string, unknown>;
}

export interface AppDeps {
  config: Config;
  log: Logger;
  clock: Clock;
  bus: EventBus<BoxEvents>;
  services: Service[];
}

export interface App {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly services: readonly Service[];
}

export function buildApp(deps: AppDeps): App {
  const started: Service[] = [];
  let stopping: Promise<void> | undefined;
  return {
    services: deps.services,
    async start() {
      for (const s of deps.services) {
        try {
          await s.start();
          started.push(s);
          deps.log.info(`${s.name} started`, s.status());
        } catch (e) {
          deps.log.error(`${s.name} failed to start: ${(e as Error).message}`);
          await stopAll(started, deps.log);
          throw e;
        }
      }
    },
    stop() {
      stopping ??= stopAll(started, deps.log);
      return stopping;
    },
  };
}

async function stopAll(started: Service[], log: Logger): Promise<void> {
  while (started.length) {
    const s = started.pop()!;
    try {
      await s.stop();
      log.info(`${s.name} stopped`);
    } catch (e) {
      log.error(`${s.name} did not stop cleanly: ${(e as Error).message}`);
    }
  }
}
