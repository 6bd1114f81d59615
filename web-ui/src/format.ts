/** Numbers, sizes, rates and times as an admin reads them. Pure: no DOM, no clock of its own. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB"; whole bytes below 1 KiB. */
export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '–';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${n < 0 ? '-' : ''}${s} ${UNITS[u]}`;
}

/** Bytes per second → "12.3 MiB/s". */
export function rate(bytesPerSecond: number | undefined | null): string {
  if (bytesPerSecond === undefined || bytesPerSecond === null || !Number.isFinite(bytesPerSecond)) return '–';
  return `${bytes(bytesPerSecond)}/s`;
}

/** Milliseconds → "850 ms", "12.4 s", "3 min 05 s", "2 h 04 min". */
export function duration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

/** An ISO time relative to `now` (ms): "just now", "5 min ago", "3 h ago", else the date. */
export function ago(iso: string | undefined | null, now: number): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ago`;
  return dateTime(iso);
}

/** "2025-03-01 14:02:07" in local time. */
export function dateTime(iso: string | undefined | null): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "14:02:07.120" in local time, for event logs. */
export function clockTime(iso: string | undefined | null): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Percentage of `part` in `whole`, 0–100, one decimal (0 when whole is 0). */
export function percent(part: number, whole: number): number {
  if (!(whole > 0)) return 0;
  return Math.min(100, Math.max(0, Math.round((part / whole) * 1000) / 10));
}

const ARCH_LABELS: Record<string, string> = {
  bios: 'BIOS',
  'uefi-ia32': 'UEFI x86 (32-bit)',
  'uefi-x64': 'UEFI x64',
  'uefi-ebc': 'UEFI EBC',
  'arm32-uefi': 'UEFI ARM',
  'arm64-uefi': 'UEFI ARM64',
  'riscv32-uefi': 'UEFI RISC-V 32',
  'riscv64-uefi': 'UEFI RISC-V 64',
  'loongarch64-uefi': 'UEFI LoongArch',
  'arm32-uboot': 'U-Boot ARM',
  'arm64-uboot': 'U-Boot ARM64',
  rpi: 'Raspberry Pi',
  unknown: 'unknown',
};

/** The architecture name of the API in words ("uefi-x64" → "UEFI x64"). */
export function archLabel(arch: string | undefined): string {
  if (!arch) return 'unknown';
  return ARCH_LABELS[arch] ?? arch;
}

/** Every lifecycle state, in the order an admin thinks of them, with a short explanation. */
export const STATES: { state: string; label: string; help: string }[] = [
  { state: 'pending', label: 'waiting for approval', help: 'netbooted for the first time; approve or reject it' },
  { state: 'approved', label: 'approved', help: 'deploys its image at its next netboot' },
  { state: 'deploying', label: 'deploying', help: 'the deploy environment is writing its image' },
  { state: 'deployed', label: 'deployed', help: 'boots from its own disk' },
  { state: 'reimage-requested', label: 'reimage requested', help: 'deploys again at its next netboot' },
  { state: 'rejected', label: 'rejected', help: 'gets no boot answer' },
  { state: 'unknown', label: 'unknown', help: 'forgotten; its next netboot counts as a first one' },
];

export function stateLabel(state: string | undefined): string {
  return STATES.find((s) => s.state === state)?.label ?? state ?? 'unknown';
}
