/**
 * The reimage confirmation: names every machine it will act on and the mode
 * (next-boot: deploy at the next netboot; wipe: the node agent erases and reboots now),
 * then sends POST /api/v1/machines/{id}/reimage for each and reports each failure in words.
 */
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, seg } from '../api.ts';
import { html } from '../html.ts';
import { live, type Machine } from '../live.ts';
import { Dialog, Notice } from '../ui.ts';

export interface DeployableImage {
  id: string;
  name: string;
  description: string;
}

/** Deployable images (install kind, enabled, in an enabled group, available). */
export async function deployableImages(): Promise<DeployableImage[]> {
  try {
    const r = await api.get<{
      images: (DeployableImage & { kind: string; enabled: boolean; available: boolean; group: string })[];
      groups: { name: string; enabled: boolean }[];
    }>('/api/v1/images');
    const off = new Set(r.groups.filter((g) => !g.enabled).map((g) => g.name.toLowerCase()));
    return r.images.filter((i) => i.kind === 'install' && i.enabled && i.available && !off.has(i.group.toLowerCase()));
  } catch {
    return [];
  }
}

const label = (m: Machine) => (m.name ? `${m.name} (${m.mac})` : m.mac);

export function ReimageDialog(props: { machines: Machine[]; onClose: (done?: string) => void }): VNode {
  const { machines } = props;
  const [mode, setMode] = useState<'next-boot' | 'wipe'>('next-boot');
  const [image, setImage] = useState('');
  const [understood, setUnderstood] = useState(false);
  const [images, setImages] = useState<DeployableImage[]>([]);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(0);
  const [failures, setFailures] = useState<{ m: Machine; message: string }[]>([]);

  useEffect(() => {
    void deployableImages().then(setImages);
  }, []);

  const n = machines.length;
  const what = `${n} machine${n === 1 ? '' : 's'}`;

  const confirm = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setFailures([]);
    setDone(0);
    const failed: { m: Machine; message: string }[] = [];
    const queue = [...machines];
    let count = 0;
    // a few at a time: the box handles each quickly, and the admin sees progress
    const worker = async () => {
      for (let m = queue.shift(); m; m = queue.shift()) {
        try {
          const r = await api.post<{ machine?: Machine }>(`/api/v1/machines/${seg(m.mac)}/reimage`, {
            mode,
            ...(image ? { image } : {}),
          });
          if (r?.machine) live.putMachine(r.machine);
        } catch (err) {
          failed.push({ m, message: (err as Error).message });
        }
        setDone(++count);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    setBusy(false);
    if (failed.length) setFailures(failed);
    else props.onClose(`Reimage (${mode}) requested for ${what}.`);
  };

  return html`<${Dialog} title=${`Reimage ${what}`} onClose=${() => !busy && props.onClose()} class="dialog-wide">
    <form onSubmit=${confirm}>
      <p>These machines will be reimaged:</p>
      <ul class="name-list" aria-label="Machines to reimage">
        ${machines.map((m) => html`<li>${label(m)}</li>`)}
      </ul>
      <fieldset>
        <legend>When</legend>
        <label class="choice">
          <input
            type="radio"
            name="reimage-mode"
            value="next-boot"
            checked=${mode === 'next-boot'}
            onChange=${() => setMode('next-boot')}
          />
          <span><b>At the next netboot</b> (next-boot): the machine deploys its image the next time it boots from the network. Nothing happens before that.</span>
        </label>
        <label class="choice">
          <input type="radio" name="reimage-mode" value="wipe" checked=${mode === 'wipe'} onChange=${() => setMode('wipe')} />
          <span><b>Wipe now</b> (wipe): the node agent erases the machine's disk and reboots it at once; it then deploys. Needs MQTT and the agent on the node.</span>
        </label>
      </fieldset>
      <label for="reimage-image">Image</label>
      <select id="reimage-image" value=${image} onChange=${(e: Event) => setImage((e.target as HTMLSelectElement).value)}>
        <option value="">Each machine's own image</option>
        ${images.map((i) => html`<option value=${i.id}>${i.name}${i.description ? ` — ${i.description}` : ''}</option>`)}
      </select>
      ${
        mode === 'wipe'
          ? html`<label class="choice warn-choice">
              <input type="checkbox" checked=${understood} onChange=${(e: Event) => setUnderstood((e.target as HTMLInputElement).checked)} />
              <span>I understand that everything on the disks of these ${what} is erased now.</span>
            </label>`
          : null
      }
      ${busy ? html`<p role="status">Requesting… ${done} of ${n}</p>` : null}
      ${
        failures.length
          ? html`<${Notice} level="error">
              ${n - failures.length} of ${n} requested; these failed:
              <ul class="notice-list">
                ${failures.map((f) => html`<li><b>${label(f.m)}</b>: ${f.message}</li>`)}
              </ul>
            <//>`
          : null
      }
      <div class="dialog-actions">
        <button type="button" onClick=${() => props.onClose(failures.length ? `Reimage requested for ${n - failures.length} of ${what}.` : undefined)} disabled=${busy}>
          ${failures.length ? 'Close' : 'Cancel'}
        </button>
        <button type="submit" class="danger" disabled=${busy || (mode === 'wipe' && !understood)}>
          ${`Reimage ${what} (${mode})`}
        </button>
      </div>
    </form>
  <//>`;
}
