/** A plain arch -> first-stage planner for DHCP server tests (the box itself plans with services/boot-service.ts). */
import { parseIPv4 } from '../../firmware/core/net.ts';
import { type FirstStageOptions, firstStageFor } from '../../firmware/policy/first-stage.ts';
import type { ClientInfo } from '../../firmware/protocols/dhcp/classify.ts';
import type { BootPlan, BootPlanner } from '../../firmware/protocols/dhcp/responder.ts';

export interface DefaultPlannerOptions extends Partial<FirstStageOptions> {
  serverAddr: string;
  httpPort: number;
}

export function defaultBootPlanner(o: DefaultPlannerOptions): BootPlanner {
  const nextServer = parseIPv4(o.serverAddr)!;
  const opts: FirstStageOptions = {
    uefiX86: o.uefiX86 ?? 'ipxe.efi',
    httpBase: o.httpBase ?? (o.httpPort === 80 ? `http://${o.serverAddr}` : `http://${o.serverAddr}:${o.httpPort}`),
  };
  return {
    plan(client: ClientInfo): BootPlan | null {
      const stage = firstStageFor(client, opts);
      if (!stage) return null;
      switch (stage.kind) {
        case 'tftp':
          return { nextServer, bootFile: stage.file };
        case 'http':
          return { nextServer, bootFile: stage.url, httpUrl: stage.url };
        case 'ipxe-script':
          return { nextServer, bootFile: stage.url };
      }
    },
  };
}
