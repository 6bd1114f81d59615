/**
 * `GET /unattend/<mac>/<file>` on the private HTTP server: a machine's unattend file,
 * rendered for it. The deploy environment (or WinPE's startup script) fetches it and hands
 * it to Setup. `<file>` names which one, case-insensitively (Windows clients):
 *
 *   client.xml, WDSClientUnattend.xml           client unattend (per architecture), XML
 *   client.inf                                  client unattend, INI
 *   image.xml, ImageUnattend.xml, unattend.xml  image unattend (beside the image), XML
 *   image.inf, sysprep.inf                      image unattend, INI (sysprep.inf)
 *
 * The handler returns the answer instead of writing to a socket; the HTTP server sends it.
 */
import { BootboxError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { normalizeMac } from '../core/net.ts';
import type { RenderedUnattend, UnattendKind } from './unattend-store.ts';

/** Which template each file name asks for (keys lower case). */
export const UNATTEND_FILES: Record<string, UnattendKind> = {
  'client.xml': 'client',
  'wdsclientunattend.xml': 'client',
  'client.inf': 'client',
  'image.xml': 'image',
  'imageunattend.xml': 'image',
  'unattend.xml': 'image',
  'image.inf': 'image',
  'sysprep.inf': 'image',
};

export interface UnattendAnswer {
  status: number;
  body: string;
  contentType: string;
}

export interface UnattendRouteDeps {
  store: { renderFor(mac: string, which: UnattendKind, file: string): Promise<RenderedUnattend> };
  log: Logger;
}

const TEXT = 'text/plain; charset=utf-8';

/** HTTP status per error code: a broken or unfillable template is the box's problem, not the node's. */
function statusOf(e: BootboxError): number {
  switch (e.code) {
    case 'NOT_FOUND':
      return 404;
    case 'FORBIDDEN':
      return 403;
    case 'UNATTEND_VALUE_MISSING':
      return 409;
    case 'VOLUME_UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

export function unattendHandler(
  deps: UnattendRouteDeps,
): (mac: string, name: string, peer: string) => Promise<UnattendAnswer> {
  return async (rawMac, name, peer) => {
    const mac = normalizeMac(rawMac);
    if (!mac) return { status: 400, body: `${JSON.stringify(rawMac)} is not a MAC address\n`, contentType: TEXT };
    const key = name.toLowerCase();
    const which = Object.hasOwn(UNATTEND_FILES, key) ? UNATTEND_FILES[key] : undefined;
    if (!which) {
      return {
        status: 404,
        body: `no unattend file ${JSON.stringify(name)}: ask for one of ${Object.keys(UNATTEND_FILES).join(', ')}\n`,
        contentType: TEXT,
      };
    }
    try {
      const r = await deps.store.renderFor(mac, which, name);
      deps.log.info('unattend served', { mac, file: name, template: r.template, peer });
      return { status: 200, body: r.body, contentType: r.contentType };
    } catch (e) {
      if (!(e instanceof BootboxError)) throw e;
      const status = statusOf(e);
      deps.log.warn('unattend refused', { mac, file: name, peer, code: e.code, error: e.message });
      return { status, body: `${e.message}\n`, contentType: TEXT };
    }
  };
}
