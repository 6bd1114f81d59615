/**
 * A writer for the "newc" cpio format (SVR4 without CRC, magic 070701), the format the
 * Linux kernel unpacks as an initramfs. See the kernel's
 * Documentation/driver-api/early-userspace/buffer-format.rst.
 *
 * Each entry is a 110-byte ASCII header (magic + 13 eight-digit hex fields), the NUL-
 * terminated name padded to a multiple of 4 bytes, then the data padded the same way.
 * The archive ends with an entry named "TRAILER!!!".
 *
 * Names are stored without a leading slash. The kernel does not create missing parent
 * directories, so parents are added automatically, before their contents. Output is
 * deterministic: inode numbers count up, and every entry has the same mtime and owner 0.
 */

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface Entry {
  name: string;
  mode: number;
  data: Buffer;
  rdevMajor: number;
  rdevMinor: number;
}

export class CpioWriter {
  private readonly entries: Entry[] = [];
  private readonly names = new Map<string, Entry>();
  private readonly mtime: number;

  /** `mtime`: seconds since the epoch, stamped on every entry. */
  constructor(mtime = 0) {
    this.mtime = mtime;
  }

  dir(name: string, perm = 0o755): this {
    const n = normalize(name);
    const existing = this.names.get(n);
    if (existing) {
      if ((existing.mode & 0o170000) !== S_IFDIR) throw new Error(`cpio: ${n} exists and is not a directory`);
      return this;
    }
    return this.add(n, S_IFDIR | perm, Buffer.alloc(0));
  }

  file(name: string, data: Buffer | string, perm = 0o644): this {
    return this.add(normalize(name), S_IFREG | perm, Buffer.isBuffer(data) ? data : Buffer.from(data));
  }

  symlink(name: string, target: string): this {
    return this.add(normalize(name), S_IFLNK | 0o777, Buffer.from(target));
  }

  charDevice(name: string, major: number, minor: number, perm = 0o600): this {
    return this.add(normalize(name), S_IFCHR | perm, Buffer.alloc(0), major, minor);
  }

  has(name: string): boolean {
    return this.names.has(normalize(name));
  }

  /** The archive, trailer included. */
  toBuffer(): Buffer {
    const parts: Buffer[] = [];
    let offset = 0;
    const push = (b: Buffer) => {
      parts.push(b);
      offset += b.length;
    };
    const pad = () => {
      const n = (4 - (offset % 4)) % 4;
      if (n) push(Buffer.alloc(n));
    };
    const emit = (ino: number, e: Entry, nlink: number) => {
      const name = Buffer.from(`${e.name}\0`);
      const fields = [
        ino,
        e.mode,
        0, // uid
        0, // gid
        nlink,
        this.mtime,
        e.data.length,
        0, // devmajor
        0, // devminor
        e.rdevMajor,
        e.rdevMinor,
        name.length,
        0, // check (unused by newc)
      ];
      push(Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii'));
      push(name);
      pad();
      if (e.data.length) {
        push(e.data);
        pad();
      }
    };
    this.entries.forEach((e, i) => {
      emit(i + 1, e, (e.mode & 0o170000) === S_IFDIR ? 2 : 1);
    });
    emit(0, { name: 'TRAILER!!!', mode: 0, data: Buffer.alloc(0), rdevMajor: 0, rdevMinor: 0 }, 1);
    return Buffer.concat(parts, offset);
  }

  private add(name: string, mode: number, data: Buffer, rdevMajor = 0, rdevMinor = 0): this {
    if (this.names.has(name)) throw new Error(`cpio: duplicate entry ${name}`);
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    if (parent) this.dir(parent);
    const e: Entry = { name, mode, data, rdevMajor, rdevMinor };
    this.entries.push(e);
    this.names.set(name, e);
    return this;
  }
}

function normalize(name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`cpio: bad entry name "${name}"`);
  return parts.join('/');
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range: ${n}`);
  return n.toString(16).toUpperCase().padStart(8, '0');
}
