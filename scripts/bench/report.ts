/** Benchmark results: one JSON document and one Markdown page per run. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Goal {
  name: string;
  target: string;
  value: string;
  met: boolean;
}

export interface Section {
  id: string;
  title: string;
  /** Column order for the Markdown table. */
  columns: string[];
  rows: Record<string, string | number | boolean | null>[];
  goals: Goal[];
  notes: string[];
}

export function writeReport(dir: string, sections: Section[]): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    node: process.versions.node,
  };
  const stamp = meta.date.replace(/[:.]/g, '-');
  const json = path.join(dir, `bench-${stamp}.json`);
  const md = path.join(dir, `bench-${stamp}.md`);
  const doc = { ...meta, sections };
  writeFileSync(json, `${JSON.stringify(doc, null, 2)}\n`);
  const lines = [
    `# bootbox benchmark, ${meta.date}`,
    '',
    `${meta.host.cpus} CPUs (${meta.host.model}), ${meta.host.memGiB} GiB, Node ${meta.node}`,
    '',
  ];
  for (const s of sections) {
    lines.push(`## ${s.title}`, '');
    if (s.rows.length) {
      lines.push(`| ${s.columns.join(' | ')} |`, `|${s.columns.map(() => '---').join('|')}|`);
      for (const r of s.rows) lines.push(`| ${s.columns.map((c) => fmt(r[c])).join(' | ')} |`);
      lines.push('');
    }
    if (s.goals.length) {
      lines.push('| goal | target | measured | met |', '|---|---|---|---|');
      for (const g of s.goals) lines.push(`| ${g.name} | ${g.target} | ${g.value} | ${g.met ? 'yes' : '**no**'} |`);
      lines.push('');
    }
    for (const n of s.notes) lines.push(`- ${n}`);
    lines.push('');
  }
  writeFileSync(md, lines.join('\n'));
  writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(doc, null, 2)}\n`);
  writeFileSync(path.join(dir, 'latest.md'), lines.join('\n'));
  return { json, md };
}

function fmt(v: unknown): string {
  if (v === undefined || v === null) return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
  return String(v);
}
