/**
 * Loads the raw-socket addon (raw IPv4 sockets, SO_BINDTODEVICE) in both ways
 * bootbox runs:
 *
 * - In a checkout (Node runs the .ts files): `require('raw-socket')` through
 *   createRequire; raw-socket loads its own build/Release/raw.node.
 * - In the shipped binary (a Node SEA built by image-build/build.ts): the bundle
 *   carries raw-socket's JavaScript, and the build rewrites its
 *   `require("./build/Release/raw.node")` into a call to `loadRawBinding()` below,
 *   because a SEA's `require` knows only built-in modules. The native file comes
 *   from the SEA asset `raw.node`, written once to an exec-capable runtime
 *   directory and opened with process.dlopen (board/native-addon.ts); failing
 *   that, from `raw.node` (or `raw-<arch>.node`) next to the binary.
 *
 * Nothing is loaded on import: the first call does the work, later calls reuse it.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { BootboxError } from '../firmware/core/errors.ts';
import { addonHomeDir, openNativeAddon } from './native-addon.ts';

/** The part of raw-socket 1.8.1's socket that bootbox uses. */
export interface RawSocket {
  /** `value` is a number (int option) or a Buffer of `length` bytes (e.g. SO_BINDTODEVICE "eth1\0"). */
  setOption(level: number, option: number, value: Buffer | number, length?: number): void;
  /** Queues a datagram to `address`; `cb` runs once it is sent or failed. */
  send(
    buffer: Buffer,
    offset: number,
    length: number,
    address: string,
    cb: (err: Error | null, bytes: number) => void,
  ): RawSocket;
  /** `buffer` is raw-socket's receive buffer: copy what you keep, it is reused for the next packet. */
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): RawSocket;
  on(event: 'error', listener: (err: Error) => void): RawSocket;
  on(event: 'close', listener: () => void): RawSocket;
  close(): RawSocket;
  pauseRecv(): RawSocket;
  resumeRecv(): RawSocket;
  /** raw-socket internals: a synchronous receive, which throws (EAGAIN) when the queue is empty. */
  wrap: { recv(buffer: Buffer, cb: (buffer: Buffer, bytes: number, source: string) => void): void };
}

export interface RawSocketOptions {
  /** IP protocol number (17 = UDP). Default 0. */
  protocol?: number;
  /** 1 = IPv4 (default), 2 = IPv6. */
  addressFamily?: number;
  /** Receive buffer size in bytes: the largest packet delivered whole. Default 4096. */
  bufferSize?: number;
}

/** The part of the raw-socket module that bootbox uses. */
export interface RawSocketModule {
  createSocket(options: RawSocketOptions): RawSocket;
  SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number; IPPROTO_IPV6: number };
  SocketOption: {
    SO_BROADCAST: number;
    SO_RCVBUF: number;
    SO_SNDBUF: number;
    SO_BINDTODEVICE: number;
    IP_HDRINCL: number;
    IP_TTL: number;
    IP_TOS: number;
  } & Record<string, number>;
  Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  AddressFamily: { IPv4: number; IPv6: number };
}

/** Name of the SEA asset that holds the addon (image-build/build.ts puts it there). */
export const RAW_ASSET = 'raw.node';

let rawSocket: RawSocketModule | undefined;
/** A failed load is final: a bundled module that threw once would come back half-initialised. */
let loadError: BootboxError | undefined;
let binding: unknown;
let bindingFile: string | undefined;

/**
 * The file the native addon was opened from by loadRawBinding (the extracted SEA
 * asset, or the copy next to the executable); undefined before that, and in a
 * checkout, where raw-socket opens its own build/Release/raw.node.
 */
export function rawAddonFile(): string | undefined {
  return bindingFile;
}

/** raw-socket, loaded on first use. Throws BootboxError ADDON_MISSING when the native addon cannot be loaded. */
export function loadRawSocket(): RawSocketModule {
  if (rawSocket) return rawSocket;
  if (loadError) throw loadError;
  try {
    // In the CJS bundle `require` is the bundle's own, and this direct call is what makes
    // esbuild include raw-socket. Under Node's ESM loader `require` does not exist.
    rawSocket = (
      typeof require === 'function' ? require('raw-socket') : createRequire(import.meta.url)('raw-socket')
    ) as RawSocketModule;
  } catch (e) {
    const hint = typeof require === 'function' ? '' : '; run npm install to rebuild it';
    loadError =
      e instanceof BootboxError
        ? e
        : new BootboxError('ADDON_MISSING', `the raw-socket addon does not load (${(e as Error).message})${hint}`);
    throw loadError;
  }
  return rawSocket;
}

/**
 * The native half of raw-socket (what its index.js gets from build/Release/raw.node).
 * Only the bundle calls this, in place of that require.
 */
export function loadRawBinding(): unknown {
  if (binding !== undefined) return binding;
  const here = addonHomeDir();
  const opened = openNativeAddon({
    name: 'the raw-socket addon',
    asset: RAW_ASSET,
    stem: 'raw',
    fallbacks: [RAW_ASSET, `raw-${process.arch}.node`].map((f) => path.join(here, f)),
  });
  binding = opened.exports;
  bindingFile = opened.file;
  return binding;
}
