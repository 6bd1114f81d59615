/** Real DHCP clients (dhclient, busybox udhcpc) run with our own scripts, inside a namespace. */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A client script that records the client's environment as JSON lines and configures the
 * address (and, with `routes`, a default route via the first router it was given).
 */
export function writeClientScript(
  dir: string,
  kind: 'dhclient' | 'udhcpc',
  opts: { routes?: boolean } = {},
): { script: string; out: string } {
  const out = path.join(dir, `${kind}-events.jsonl`);
  const script = path.join(dir, `${kind}-script.sh`);
  const route = (v: string) =>
    opts.routes ? `; [ -n "${v}" ] && ip route replace default via "\${${v.slice(1)}%% *}" dev "$interface"` : '';
  const body =
    kind === 'dhclient'
      ? `#!/bin/sh
# dhclient calls this with $reason and new_* variables.
printf '{"reason":"%s","ip":"%s","mask":"%s","routers":"%s","lease":"%s","server":"%s"}\\n' \\
  "$reason" "$new_ip_address" "$new_subnet_mask" "$new_routers" "$new_dhcp_lease_time" "$new_dhcp_server_identifier" >> ${out}
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"${route('$new_routers')} ;;
  RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
`
      : `#!/bin/sh
# udhcpc calls this with $1 = deconfig|bound|renew|nak and ip/subnet/router/lease/serverid.
printf '{"reason":"%s","ip":"%s","mask":"%s","routers":"%s","lease":"%s","server":"%s"}\\n' \\
  "$1" "$ip" "$subnet" "$router" "$lease" "$serverid" >> ${out}
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$subnet" dev "$interface"${route('$router')} ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
`;
  writeFileSync(script, body);
  chmodSync(script, 0o755);
  writeFileSync(out, '');
  return { script, out };
}

export interface ClientEvent {
  reason: string;
  ip: string;
  mask: string;
  routers: string;
  lease: string;
  server: string;
}

export function readEvents(file: string): ClientEvent[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ClientEvent);
}

/** Polls the script's record until an event with one of `reasons` appears after index `from`. */
export async function waitForEvent(
  file: string,
  reasons: string[],
  from = 0,
  timeoutMs = 10_000,
): Promise<ClientEvent> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const e = readEvents(file)
      .slice(from)
      .find((x) => reasons.includes(x.reason));
    if (e) return e;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${reasons.join('/')} event in ${file}: ${JSON.stringify(readEvents(file))}`);
}
