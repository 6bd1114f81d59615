/**
 * The configuration of a test mosquitto (Debian's broker as a real peer): a password file
 * made with mosquitto_passwd, no anonymous access, logs on stderr, optional persistence
 * and TLS. Shared by the loopback broker (test/integration/mqtt-support.ts) and the lab
 * broker in a namespace (test/helpers/mqtt-lab.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface MosquittoConfig {
  dir: string;
  host: string;
  port: number;
  users: Record<string, string>;
  persistence?: boolean;
  tls?: { ca: string; cert: string; key: string; requireClientCert?: boolean };
}

/** Writes `<dir>/passwd` and `<dir>/mosquitto.conf`; returns the config file's path. */
export function writeMosquittoConfig(o: MosquittoConfig): string {
  mkdirSync(o.dir, { recursive: true });
  const passwd = path.join(o.dir, 'passwd');
  writeFileSync(passwd, '');
  for (const [u, p] of Object.entries(o.users)) execFileSync('mosquitto_passwd', ['-b', passwd, u, p]);
  const lines = [
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${passwd}`,
    // Run as the test's user: the generated files stay readable.
    'user root',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    `persistence ${o.persistence ? 'true' : 'false'}`,
    `persistence_location ${o.dir}/`,
    `listener ${o.port} ${o.host}`,
    ...(o.tls
      ? [
          `cafile ${o.tls.ca}`,
          `certfile ${o.tls.cert}`,
          `keyfile ${o.tls.key}`,
          ...(o.tls.requireClientCert ? ['require_certificate true'] : []),
          'tls_version tlsv1.2',
        ]
      : []),
  ];
  const conf = path.join(o.dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return conf;
}
