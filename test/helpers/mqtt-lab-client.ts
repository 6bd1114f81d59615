/**
 * An MQTT.js client for lab tests, run as a child inside a network namespace (the test
 * process itself cannot reach namespace addresses):
 *
 *   node mqtt-lab-client.ts '{"url":"mqtt://10.78.0.1:1883","subscribe":["bootbox/+/status"]}'
 *
 * Options (JSON in argv[2]): url, username?, password?, ca? (PEM file), clientId?, clean?
 * (default true), subscribe? (filters, QoS 1), reconnectMs? (0: no reconnect).
 * Prints one JSON line per happening and runs until killed:
 *   {"event":"connect"} {"event":"subscribed","granted":[1]}
 *   {"event":"message","topic":…,"retain":true,"qos":1,"payload":"…"}
 *   {"event":"error","message":…} {"event":"close"}
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions } from 'mqtt';

export interface MqttLabClientOptions {
  url: string;
  username?: string;
  password?: string;
  ca?: string;
  clientId?: string;
  clean?: boolean;
  subscribe?: string[];
  reconnectMs?: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as MqttLabClientOptions;
const out = (e: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(e)}\n`);
const opts: IClientOptions = {
  clean: o.clean ?? true,
  reconnectPeriod: o.reconnectMs ?? 0,
  connectTimeout: 5000,
  ...(o.clientId !== undefined && { clientId: o.clientId }),
  ...(o.username !== undefined && { username: o.username }),
  ...(o.password !== undefined && { password: o.password }),
  ...(o.ca !== undefined && { ca: readFileSync(o.ca) }),
};
const client = mqtt.connect(o.url, opts);
client.on('connect', (connack) => {
  out({ event: 'connect', sessionPresent: connack.sessionPresent });
  if (!o.subscribe?.length) return;
  client.subscribe(o.subscribe, { qos: 1 }, (err, granted) => {
    if (err) out({ event: 'error', message: err.message });
    else out({ event: 'subscribed', granted: (granted ?? []).map((g) => g.qos) });
  });
});
client.on('message', (topic, payload, packet) =>
  out({ event: 'message', topic, retain: packet.retain, qos: packet.qos, payload: payload.toString('utf8') }),
);
client.on('error', (e) => out({ event: 'error', message: e.message }));
client.on('close', () => out({ event: 'close' }));
process.on('SIGTERM', () => client.end(true, {}, () => process.exit(0)));
