/**
 * A tiny entry bundled exactly like firmware/main.ts, for test/build: it proves
 * that an executable finds and loads its raw-socket addon, and where from,
 * independently of the product CLI.
 *
 *   bootbox-probe version                   bootbox-probe <version> linux-<arch> commit <commit>
 *   bootbox-probe addon                     addon ok <file the native addon was loaded from>
 *   bootbox-probe raw --iface IFACE         raw ok IFACE   (raw UDP socket bound with SO_BINDTODEVICE)
 *
 * Errors print `error <CODE>: <message>` and exit with the code's exit status.
 */
import { loadRawSocket, rawAddonFile } from '../board/raw-addon.ts';
import { BootboxError } from '../firmware/core/errors.ts';

declare const BOOTBOX_BUILD: { version: string; commit: string; builtAt: string } | undefined;

function probe(argv: string[]): string {
  const [cmd, flag, iface] = argv;
  if (cmd === 'version') {
    const b = typeof BOOTBOX_BUILD === 'undefined' ? { version: 'dev', commit: 'unknown' } : BOOTBOX_BUILD;
    return `bootbox-probe ${b.version} linux-${process.arch} commit ${b.commit}`;
  }
  if (cmd === 'addon') {
    try {
      loadRawSocket();
    } catch {
      // Load again below: a failed load must fail the same way, not return a half-loaded module.
    }
    loadRawSocket();
    return `addon ok ${rawAddonFile() ?? 'raw-socket/build/Release/raw.node'}`;
  }
  if (cmd === 'raw' && flag === '--iface' && iface) {
    const raw = loadRawSocket();
    const sock = raw.createSocket({ protocol: raw.Protocol.UDP });
    try {
      const name = Buffer.from(`${iface}\0`);
      sock.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_BINDTODEVICE, name, name.length);
    } catch (e) {
      throw new BootboxError('INTERFACE_MISSING', `cannot bind to interface "${iface}": ${(e as Error).message}`);
    } finally {
      sock.close();
    }
    return `raw ok ${iface}`;
  }
  throw new BootboxError('USAGE', 'usage: bootbox-probe version | addon | raw --iface IFACE');
}

try {
  console.log(probe(process.argv.slice(2)));
} catch (e) {
  const code = e instanceof BootboxError ? e.code : 'INTERNAL';
  console.error(`error ${code}: ${(e as Error).message}`);
  process.exitCode = e instanceof BootboxError ? e.exitCode : 1;
}
