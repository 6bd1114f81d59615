/**
 * A box-side process for the last-will tests: an MqttLink configured by the JSON in
 * argv[2] ({url, root, boxId, username?, password?, ca?, cert?, key?, keepaliveSec}).
 * It prints "online" after each connect and runs until it is killed.
 */

import { readTlsFiles } from '../../firmware/config/tls-files.ts';
import { systemClock } from '../../firmware/core/clock.ts';
import { createLogger } from '../../firmware/core/logger.ts';
import { MqttLink } from '../../firmware/telemetry/mqtt/link.ts';

const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  root: string;
  boxId: string;
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
  keepaliveSec: number;
};
const link = new MqttLink({
  root: cfg.root,
  boxId: cfg.boxId,
  version: 'test',
  url: cfg.url,
  username: cfg.username,
  password: cfg.password,
  tls: readTlsFiles(cfg),
  keepaliveSec: cfg.keepaliveSec,
  eventBuffer: 10,
  clock: systemClock,
  log: createLogger('box-child', { level: 'info', write: (line) => process.stderr.write(`${line}\n`) }),
});
link.onConnect(() => process.stdout.write('online\n'));
await link.start();
