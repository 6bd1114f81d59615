/** Peer servers that Debian packages in a way that conflicts; unpacked into .cache/ instead. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './lab.ts';

/**
 * tftpd-hpa conflicts with atftpd as a Debian package, so its in.tftpd is unpacked with
 * dpkg-deb (../shared/NOTES-lab.md). Returns the path of in.tftpd.
 */
export function tftpdHpa(): string {
  const dir = path.join(ROOT, '.cache', 'tftpd-hpa');
  const bin = path.join(dir, 'usr/sbin/in.tftpd');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  execFileSync('apt-get', ['download', 'tftpd-hpa'], { cwd: dir, stdio: 'inherit' });
  const deb = readdirSync(dir).find((f) => f.startsWith('tftpd-hpa_') && f.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download tftpd-hpa gave no .deb');
  execFileSync('dpkg-deb', ['-x', deb, '.'], { cwd: dir });
  return bin;
}
