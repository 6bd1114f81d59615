/** `/api/v1/machines…` routes (CONTRACT.md): list, get with timeline, approve, reject, reimage. */
import { BootboxError } from '../core/errors.ts';
import { type Machine, UEFI_X86_FIRST_STAGES, type UefiX86FirstStage } from '../domain/machine.ts';
import type { MachineRegistry } from '../services/machines.ts';
import { errorBody, fromError, type Route, type RouteResult } from './server.ts';
import type { Schema } from './validate.ts';

/** PUT /api/v1/machines/{id}: the registry checks the name further (NetBIOS/DNS, unique). */
const MACHINE_PATCH: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 64 },
    image: { type: ['string', 'null'], maxLength: 128 },
    group: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._-]{1,64}$' },
    firstStage: { type: ['string', 'null'], enum: [...UEFI_X86_FIRST_STAGES, null] },
  },
};

const REIMAGE: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { type: 'string', enum: ['next-boot', 'wipe'] },
    image: { type: 'string', maxLength: 128 },
  },
  required: ['mode'],
};

function view(m: Machine): Record<string, unknown> {
  return { id: m.mac, ...m };
}

/** The wipe-and-reboot flow (telemetry/mqtt CommandService.invoke): marks the machine and tells its agent. */
export type WipeRequest = (mac: string, image: string | undefined, actor: string) => RouteResult;

export function machineRoutes(registry: MachineRegistry, images: () => string[], wipe?: WipeRequest): Route[] {
  const find = (id: string): Machine | RouteResult => {
    const m = registry.get(id);
    return m ?? errorBody('NOT_FOUND', `no machine "${id}" (give a MAC like aa:bb:cc:dd:ee:ff or a machine name)`);
  };
  const isResult = (x: Machine | RouteResult): x is RouteResult => 'status' in x;
  const act = (id: string, event: Parameters<MachineRegistry['apply']>[1]): RouteResult => {
    const m = find(id);
    if (isResult(m)) return m;
    const r = registry.apply(m.mac, event);
    if (r instanceof BootboxError) return fromError(r);
    return { status: 200, body: { machine: view(r.machine), change: r.change } };
  };
  return [
    {
      method: 'GET',
      path: '/api/v1/machines',
      auth: false,
      summary: 'List the machines (?state= filters)',
      querySchema: { state: { type: 'string', maxLength: 32 } },
      responseDescription: '{machines, count}',
      handler: ({ query }) => {
        const state = query.get('state');
        const list = registry
          .list()
          .filter((m) => !state || m.state === state)
          .sort((a, b) => (a.name ?? a.mac).localeCompare(b.name ?? b.mac));
        return { status: 200, body: { machines: list.map(view), count: list.length } };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/machines/{id}',
      auth: false,
      summary: 'One machine (by MAC or name) with its boot timeline',
      responseDescription: '{machine, timeline}',
      handler: ({ params }) => {
        const m = find(params.id!);
        if (isResult(m)) return m;
        return { status: 200, body: { machine: view(m), timeline: registry.timeline(m.mac) } };
      },
    },
    {
      method: 'PUT',
      path: '/api/v1/machines/{id}',
      auth: true,
      summary: 'Name a machine, set its image, group or first stage (null clears)',
      requestSchema: MACHINE_PATCH,
      responseDescription: '{machine}',
      handler: ({ params, body }) => {
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          return errorBody('INVALID_REQUEST', 'body must be an object: {"name"?, "image"?, "group"?, "firstStage"?}');
        }
        const b = body as Record<string, unknown>;
        const patch: Parameters<MachineRegistry['update']>[1] = {};
        for (const [k, v] of Object.entries(b)) {
          switch (k) {
            case 'name':
              if (typeof v !== 'string') return errorBody('INVALID_REQUEST', '"name" must be a string');
              patch.name = v;
              break;
            case 'image':
              if (v !== null && (typeof v !== 'string' || !images().includes(v))) {
                return errorBody('NOT_FOUND', `image ${JSON.stringify(v)} is not in the catalog`);
              }
              patch.image = v as string | null;
              break;
            case 'group':
              if (v !== null && (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(v))) {
                return errorBody('INVALID_REQUEST', '"group" must be 1-64 letters, digits, . _ or -, or null');
              }
              patch.group = v as string | null;
              break;
            case 'firstStage':
              if (v !== null && !(UEFI_X86_FIRST_STAGES as readonly unknown[]).includes(v)) {
                return errorBody('INVALID_REQUEST', '"firstStage" must be "ipxe.efi", "snponly.efi", "shim" or null');
              }
              patch.firstStage = v as UefiX86FirstStage | null;
              break;
            default:
              return errorBody('INVALID_REQUEST', `unknown field "${k}"`);
          }
        }
        const m = find(params.id!);
        if (isResult(m)) return m;
        const r = registry.update(m.mac, patch);
        if (r instanceof BootboxError) return fromError(r);
        return { status: 200, body: { machine: view(r) } };
      },
    },
    {
      method: 'POST',
      path: '/api/v1/machines/{id}/approve',
      auth: true,
      summary: 'Approve a pending machine',
      responseDescription: '{machine, change}',
      handler: ({ params, actor }) => act(params.id!, { type: 'approve', by: actor }),
    },
    {
      method: 'POST',
      path: '/api/v1/machines/{id}/reject',
      auth: true,
      summary: 'Reject a pending machine',
      responseDescription: '{machine, change}',
      handler: ({ params, actor }) => act(params.id!, { type: 'reject', by: actor }),
    },
    {
      method: 'POST',
      path: '/api/v1/machines/{id}/reimage',
      auth: true,
      summary: 'Reimage a machine at its next boot, or wipe it now through its agent',
      requestSchema: REIMAGE,
      responseDescription: "{machine, change} (next-boot) or the wipe command's answer",
      handler: ({ params, body, actor }) => {
        const b = (body ?? {}) as Record<string, unknown>;
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          return errorBody('INVALID_REQUEST', 'body must be {"mode": "next-boot" | "wipe", "image"?: string}');
        }
        for (const k of Object.keys(b)) {
          if (k !== 'mode' && k !== 'image') return errorBody('INVALID_REQUEST', `unknown field "${k}"`);
        }
        if (b.mode !== 'next-boot' && b.mode !== 'wipe') {
          return errorBody('INVALID_REQUEST', '"mode" must be "next-boot" or "wipe"');
        }
        if (b.image !== undefined && (typeof b.image !== 'string' || !images().includes(b.image))) {
          return errorBody('NOT_FOUND', `image ${JSON.stringify(b.image)} is not in the catalog`);
        }
        if (b.mode === 'wipe') {
          if (!wipe) return errorBody('INVALID_REQUEST', 'mode "wipe" needs MQTT (the node agent), which is off');
          const m = find(params.id!);
          if (isResult(m)) return m;
          return wipe(m.mac, b.image as string | undefined, actor);
        }
        return act(params.id!, {
          type: 'reimage',
          mode: 'next-boot',
          by: actor,
          ...(b.image ? { image: b.image as string } : {}),
        });
      },
    },
  ];
}
