/**
 * `npm run bench [-- section ...]`: runs the benchmarks against bootbox and against the
 * peers in the same run and namespaces, and writes bench-results/latest.{json,md}.
 * Sections: dhcp, tftp. Root is required (network namespaces).
 */
import path from 'node:path';
import { type Section, writeReport } from './report.ts';

const SECTIONS: Record<string, () => Promise<{ run(): Promise<Section[]> }>> = {
  dhcp: () => import('./dhcp.ts'),
  tftp: () => import('./tftp.ts'),
  'image-import': () => import('./image-import.ts'),
  'http-images': () => import('./http-images.ts'),
  catalog: () => import('./catalog.ts'),
  mqtt: () => import('./mqtt.ts'),
  ui: () => import('./ui.ts'),
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length ? wanted : Object.keys(SECTIONS);
const sections: Section[] = [];
for (const name of names) {
  const load = SECTIONS[name];
  if (!load) {
    console.error(`bench: unknown section "${name}" (known: ${Object.keys(SECTIONS).join(', ')})`);
    process.exit(2);
  }
  console.log(`== bench ${name}`);
  try {
    sections.push(...(await (await load()).run()));
  } catch (e) {
    console.error(`bench ${name} failed: ${(e as Error).stack}`);
    sections.push({
      id: name,
      title: `${name}: FAILED`,
      columns: [],
      rows: [],
      goals: [],
      notes: [String((e as Error).message)],
    });
  }
}
const out = writeReport(path.resolve(import.meta.dirname, '../../bench-results'), sections);
console.log(`report: ${out.md}\n        ${out.json}`);
