/**
 * bootbox's own zero-copy file sender (board/native/sendfile/sendfile.cc, Node-API):
 * sendfile(2) from a file to a socket, driven by Node's event loop (no threads), so image
 * bodies go from the page cache to the socket without two copies through the JavaScript heap.
 *
 * Where the native file comes from:
 * - in a checkout: board/native/sendfile/build/Release/sendfile.node, built by
 *   scripts/build-addon.mjs (npm install runs it);
 * - in the shipped binary: the SEA asset `sendfile.node` (board/native-addon.ts),
 *   failing that `sendfile.node` or `sendfile-<arch>.node` next to the executable
 *   (or next to the bundle when the bundle runs under a plain node).
 *
 * Nothing is loaded on import: the first call does the work, later calls reuse it.
 */
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BootboxError } from '../firmware/core/errors.ts';
import { addonHomeDir, openNativeAddon } from './native-addon.ts';

/** What a failed or cut-short transfer reports. */
export interface SendfileError extends Error {
  /**
   * The errno name (EPIPE, ECONNRESET, EIO, ...); `EOF` when the file ended before
   * offset + length; `ETIMEDOUT` when the socket took nothing for the idle timeout;
   * `ECANCELED` after abort().
   */
  code: string;
  bytesSent: number;
}

export interface SendfileJob {
  /** Stops the transfer at once; the callback still runs, once (later, from the loop), with ECANCELED. */
  abort(): void;
}

export interface SendfileAddon {
  /**
   * Sends `length` bytes of `fileFd` from `offset` to `socketFd` from the event loop, a few
   * MiB per wake-up while the socket is writable.
   * Both descriptors are duplicated before the call returns (the caller may close its own
   * once the callback has run). `callback` runs once, on the main thread, with the bytes
   * that went into the socket. Throws (e.g. EBADF, EMFILE) when the transfer cannot start.
   */
  sendfile(
    socketFd: number,
    fileFd: number,
    offset: number,
    length: number,
    callback: (err: SendfileError | null, bytesSent: number) => void,
    idleTimeoutMs?: number,
  ): SendfileJob;
}

/** Name of the SEA asset that holds the addon (image-build/build.ts puts it there). */
export const SENDFILE_ASSET = 'sendfile.node';

let addon: SendfileAddon | undefined;
let addonFile: string | undefined;
/** A failed load is final: the same error every time. */
let loadError: BootboxError | undefined;

/** The file the addon was opened from, once loaded. */
export function sendfileAddonFile(): string | undefined {
  return addonFile;
}

/** The addon, loaded on first use. Throws BootboxError ADDON_MISSING when it cannot be loaded. */
export function loadSendfileAddon(): SendfileAddon {
  if (addon) return addon;
  if (loadError) throw loadError;
  const here = addonHomeDir();
  // In the bundle this module's file name is the bundle's (or the executable's).
  const inCheckout = import.meta.filename.endsWith('.ts');
  const fallbacks = inCheckout
    ? [path.join(import.meta.dirname, 'native/sendfile/build/Release/sendfile.node')]
    : [SENDFILE_ASSET, `sendfile-${process.arch}.node`].map((f) => path.join(here, f));
  try {
    const opened = openNativeAddon({ name: 'the sendfile addon', asset: SENDFILE_ASSET, stem: 'sendfile', fallbacks });
    const m = opened.exports as Partial<SendfileAddon>;
    if (typeof m.sendfile !== 'function') {
      throw new BootboxError('ADDON_MISSING', `${opened.file} is not the sendfile addon (no sendfile function)`);
    }
    addon = m as SendfileAddon;
    addonFile = opened.file;
    return addon;
  } catch (e) {
    const hint = inCheckout ? ' (run npm install to build it)' : '';
    loadError =
      e instanceof BootboxError
        ? new BootboxError(e.code, `${e.message}${hint}`, e.details)
        : new BootboxError('ADDON_MISSING', `the sendfile addon does not load: ${(e as Error).message}${hint}`);
    throw loadError;
  }
}

/** The file descriptor under a connected net.Socket, when it has one (not TLS, not a pipe wrapper). */
export function socketFd(sock: net.Socket | null | undefined): number | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } } | null | undefined)?._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/**
 * Proves the addon works on this machine: serves a file of random bytes to itself over
 * loopback TCP with sendfile (whole, and a range), and compares what arrived.
 * Returns a one-line report; throws when anything differs.
 */
export async function sendfileSelftest(): Promise<string> {
  const sf = loadSendfileAddon();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bootbox-sendfile-'));
  const file = path.join(dir, 'selftest.bin');
  const data = randomFillSync(Buffer.allocUnsafe(8 * 1024 * 1024 + 4099));
  const ranges: [number, number][] = [
    [0, data.length],
    [777, 3 * 1024 * 1024 + 1],
  ];
  try {
    fs.writeFileSync(file, data);
    for (const [offset, length] of ranges) {
      const got = await serveOnce(sf, file, offset, length);
      const want = data.subarray(offset, offset + length);
      if (!got.equals(want)) {
        throw new BootboxError(
          'INTERNAL',
          `sendfile selftest: bytes ${offset}+${length} arrived as ${got.length} bytes, sha256 ${sha16(got)} instead of ${sha16(want)}`,
        );
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return `sendfile ok ${data.length} bytes sha256 ${sha16(data)} from ${addonFile ?? SENDFILE_ASSET}`;
}

function serveOnce(sf: SendfileAddon, file: string, offset: number, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => {
      srv.close();
      reject(e);
    };
    const srv = net.createServer((sock) => {
      const fd = fs.openSync(file, 'r');
      const sfd = socketFd(sock);
      if (sfd === undefined) {
        fs.closeSync(fd);
        sock.destroy();
        return fail(new BootboxError('INTERNAL', 'sendfile selftest: the socket has no file descriptor'));
      }
      sf.sendfile(
        sfd,
        fd,
        offset,
        length,
        (err, n) => {
          fs.closeSync(fd);
          if (err) {
            sock.destroy();
            return fail(err);
          }
          if (n !== length) return fail(new BootboxError('INTERNAL', `sendfile selftest: sent ${n} of ${length}`));
          sock.end();
        },
        10_000,
      );
    });
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
      const chunks: Buffer[] = [];
      c.on('data', (b: Buffer) => chunks.push(b));
      c.on('error', fail);
      c.on('end', () => {
        srv.close();
        resolve(Buffer.concat(chunks));
      });
    });
  });
}

function sha16(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex').slice(0, 16);
}
