/**
 * Images: the catalog by group (enable and disable groups and images), problems found
 * on the volume, the volume's state, uploads with progress and resume, unattend templates.
 */
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, isMissingRoute, seg } from '../api.ts';
import { ago, bytes, percent, rate } from '../format.ts';
import { html } from '../html.ts';
import { live, useNow } from '../live.ts';
import { EmptyState, Notice, PageTitle, Toggle } from '../ui.ts';
import { sendFile, type UploadRecord, type UploadStatus } from '../upload.ts';

export interface CatalogImage {
  id: string;
  name: string;
  group: string;
  kind: string;
  format: string;
  description: string;
  architecture: string;
  os?: string;
  size: number;
  hash?: string;
  enabled: boolean;
  available: boolean;
  unavailableReason?: string;
  addedAt: string;
}

interface CatalogGroup {
  name: string;
  kind: string;
  enabled: boolean;
  description: string;
}

interface CatalogResponse {
  images: CatalogImage[];
  count: number;
  groups: CatalogGroup[];
  problems: { file: string; code: string; message: string }[];
  volume: { state: string; reason?: string };
  lastScan: { at: string; ms: number; files: number } | null;
}

export function ImagesPage(): VNode {
  const [cat, setCat] = useState<CatalogResponse | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [message, setMessage] = useState<{ level: 'ok' | 'error'; text: string } | undefined>();
  const [busy, setBusy] = useState<Set<string>>(new Set());
  const [scanning, setScanning] = useState(false);
  const now = useNow(30_000);

  const load = async () => {
    try {
      setCat(await api.get<CatalogResponse>('/api/v1/images'));
      setError(undefined);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    void load();
    return live.subscribe('catalog', () => void load());
  }, []);

  const withBusy = async (key: string, fn: () => Promise<unknown>, done: string) => {
    setBusy((b) => new Set(b).add(key));
    try {
      await fn();
      setMessage({ level: 'ok', text: done });
      await load();
    } catch (e) {
      setMessage({ level: 'error', text: (e as Error).message });
    } finally {
      setBusy((b) => {
        const n = new Set(b);
        n.delete(key);
        return n;
      });
    }
  };

  const rescan = async () => {
    setScanning(true);
    try {
      const r = await api.post<{ images?: number; added?: number; removed?: number; problems?: number }>(
        '/api/v1/images/rescan',
      );
      setMessage({
        level: 'ok',
        text: `Scan done: ${r.images ?? '?'} images, ${r.added ?? 0} added, ${r.removed ?? 0} removed, ${r.problems ?? 0} problems.`,
      });
      await load();
    } catch (e) {
      setMessage({ level: 'error', text: `Scan failed: ${(e as Error).message}` });
    } finally {
      setScanning(false);
    }
  };

  const groups = new Map<string, { group: CatalogGroup; images: CatalogImage[] }>();
  for (const g of cat?.groups ?? []) groups.set(`${g.kind}/${g.name.toLowerCase()}`, { group: g, images: [] });
  for (const i of cat?.images ?? []) {
    const k = `${i.kind}/${i.group.toLowerCase()}`;
    if (!groups.has(k))
      groups.set(k, { group: { name: i.group, kind: i.kind, enabled: true, description: '' }, images: [] });
    groups.get(k)!.images.push(i);
  }

  return html`<div class="page">
    <${PageTitle} actions=${html`<button type="button" onClick=${rescan} disabled=${scanning}>${scanning ? 'Scanning…' : 'Rescan the volume'}</button>`}>
      Images
    <//>
    <div aria-live="polite">${message ? html`<${Notice} level=${message.level}>${message.text}<//>` : null}</div>
    ${error ? html`<${Notice} level="error">The catalog could not be loaded: ${error}<//>` : null}
    ${
      cat
        ? html`<p class="volume-line">
            Image volume:
            ${
              cat.volume.state === 'attached'
                ? html`<span class="badge badge-deployed">attached</span>`
                : html`<span class="badge badge-rejected">${cat.volume.state}</span> ${cat.volume.reason ?? ''}`
            }
            ${cat.lastScan ? html` · last scan ${ago(cat.lastScan.at, now)}, ${cat.lastScan.files} files` : null}
          </p>`
        : null
    }

    <${UploadPanel} groups=${[...new Set((cat?.groups ?? []).filter((g) => g.kind === 'install').map((g) => g.name))]} onDone=${load} />

    ${
      cat && cat.images.length === 0 && groups.size === 0
        ? html`<${EmptyState} title="No images yet.">
            <p>
              Upload a Windows image (.wim or .esd) or a raw disk image (.img) above. You can also copy files onto the image volume,
              under <code>${'install-images/<group>/'}</code> (or <code>boot-images/</code> for WinPE boot images), then press
              <b>Rescan the volume</b>.
            </p>
          <//>`
        : null
    }

    ${[...groups.values()].map(
      ({ group: g, images }) => html`<section class="card group" aria-label=${`Group ${g.name}`}>
        <div class="section-head">
          <h2>${g.name} <span class="muted small">${g.kind === 'boot' ? 'boot images' : 'install images'}</span></h2>
          <${Toggle}
            on=${g.enabled}
            label=${`Group ${g.name} enabled`}
            busy=${busy.has(`g:${g.name}`)}
            onChange=${(on: boolean) =>
              withBusy(
                `g:${g.name}`,
                () => api.put(`/api/v1/image-groups/${seg(g.name)}`, { enabled: on }),
                `Group ${g.name} ${on ? 'enabled' : 'disabled'}.`,
              )}
          />
        </div>
        ${g.description ? html`<p class="help">${g.description}</p>` : null}
        ${!g.enabled ? html`<p class="help">Disabled: no machine is given an image of this group.</p>` : null}
        ${
          images.length === 0
            ? html`<p class="muted">No images in this group.</p>`
            : html`<div class="table-wrap">
                <table class="table-cards">
                  <thead>
                    <tr>
                      <th scope="col">Image</th>
                      <th scope="col">Description</th>
                      <th scope="col">Arch</th>
                      <th scope="col">Format</th>
                      <th scope="col">Size</th>
                      <th scope="col">Status</th>
                      <th scope="col">Enabled</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${images.map(
                      (i) => html`<tr key=${i.id}>
                        <td data-label="Image"><span class="image-name">${i.name}</span><br /><span class="mono muted small">${i.id}</span></td>
                        <td data-label="Description" class="image-description">${i.description || '–'}</td>
                        <td data-label="Arch">${i.architecture}${i.os ? ` (${i.os})` : ''}</td>
                        <td data-label="Format">${i.format}</td>
                        <td data-label="Size">${bytes(i.size)}</td>
                        <td data-label="Status">
                          ${
                            i.available
                              ? html`<span class="badge badge-deployed">available</span>`
                              : html`<span class="badge badge-rejected">unavailable</span> ${i.unavailableReason ?? ''}`
                          }
                        </td>
                        <td data-label="Enabled">
                          <${Toggle}
                            on=${i.enabled}
                            label=${`Image ${i.name} enabled`}
                            busy=${busy.has(`i:${i.id}`)}
                            onChange=${(on: boolean) =>
                              withBusy(
                                `i:${i.id}`,
                                () => api.put(`/api/v1/images/${seg(i.id)}`, { enabled: on }),
                                `Image ${i.name} ${on ? 'enabled' : 'disabled'}.`,
                              )}
                          />
                        </td>
                      </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`
        }
      </section>`,
    )}

    ${
      cat?.problems.length
        ? html`<section class="card" aria-labelledby="img-problems">
            <h2 id="img-problems">Problems on the volume (${cat.problems.length})</h2>
            <p class="help">These files are on the image volume but are not in the catalog. Fix or remove them, then rescan.</p>
            <ul class="problems">
              ${cat.problems.map((p) => html`<li><span class="mono">${p.file}</span>: ${p.message} <span class="muted small">(${p.code})</span></li>`)}
            </ul>
          </section>`
        : null
    }

    <${UnattendSection} />
  </div>`;
}

function UploadPanel(props: { groups: string[]; onDone: () => void }): VNode {
  const fileRef = useRef<HTMLInputElement>(null);
  const [kind, setKind] = useState<'install' | 'boot'>('install');
  const [group, setGroup] = useState('default');
  const [name, setName] = useState('');
  const [status, setStatus] = useState<UploadStatus | undefined>();
  const [unfinished, setUnfinished] = useState<UploadRecord[]>([]);
  const [resume, setResume] = useState<UploadRecord | undefined>();
  const abortRef = useRef<AbortController | undefined>(undefined);
  const [fileError, setFileError] = useState<string | undefined>();

  const loadUnfinished = async () => {
    try {
      const r = await api.get<{ uploads: UploadRecord[] }>('/api/v1/uploads');
      setUnfinished(r.uploads.filter((u) => u.state === 'receiving' && !u.active));
    } catch {
      setUnfinished([]);
    }
  };
  useEffect(() => {
    void loadUnfinished();
  }, []);

  const running = status && ['starting', 'sending', 'retrying', 'verifying'].includes(status.phase);
  const start = async (e: Event) => {
    e.preventDefault();
    const file = fileRef.current?.files?.[0];
    if (!file) {
      setFileError('Choose a file first.');
      fileRef.current?.focus();
      return;
    }
    setFileError(undefined);
    const ac = new AbortController();
    abortRef.current = ac;
    const end = await sendFile(
      file,
      {
        kind,
        group: group.trim() || 'default',
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(resume ? { resume } : {}),
      },
      setStatus,
      ac.signal,
    );
    abortRef.current = undefined;
    if (end.phase === 'done') {
      setResume(undefined);
      if (fileRef.current) fileRef.current.value = '';
      props.onDone();
    }
    if (end.phase === 'cancelled' && end.upload) {
      await api.del(`/api/v1/uploads/${seg(end.upload.id)}`).catch(() => undefined);
    }
    await loadUnfinished();
  };

  const pct = status ? percent(status.sent, status.size) : 0;
  return html`<section class="card upload" aria-labelledby="upload-title">
    <h2 id="upload-title">Upload an image</h2>
    <form onSubmit=${start}>
      <div class="form-grid">
        <div class="field field-wide">
          <label for="upload-file">Image file (.wim, .esd, .img, .raw)</label>
          <input
            id="upload-file"
            type="file"
            ref=${fileRef}
            accept=".wim,.esd,.img,.raw"
            disabled=${running}
            aria-describedby=${fileError ? 'upload-file-error' : undefined}
          />
          ${fileError ? html`<p id="upload-file-error" class="field-error" role="alert">${fileError}</p>` : null}
        </div>
        <div class="field">
          <label for="upload-kind">Kind</label>
          <select id="upload-kind" value=${kind} disabled=${running || resume} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value as 'install' | 'boot')}>
            <option value="install">Install image</option>
            <option value="boot">Boot image (WinPE)</option>
          </select>
        </div>
        ${
          kind === 'install'
            ? html`<div class="field">
                <label for="upload-group">Group</label>
                <input id="upload-group" list="upload-groups" value=${group} disabled=${running || resume} onInput=${(e: Event) => setGroup((e.target as HTMLInputElement).value)} />
                <datalist id="upload-groups">${props.groups.map((g) => html`<option value=${g} />`)}</datalist>
              </div>`
            : null
        }
        <div class="field">
          <label for="upload-name">Name (optional)</label>
          <input
            id="upload-name"
            value=${name}
            aria-describedby="upload-name-help"
            disabled=${running || resume}
            onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)}
          />
          <p id="upload-name-help" class="help">Disk images only; the file name without its extension if empty. WIM images are named by their own metadata.</p>
        </div>
      </div>
      ${resume ? html`<p class="help">Resuming ${resume.filename}: choose the same file again.</p>` : null}
      <div class="actions">
        <button type="submit" class="primary" disabled=${running}>${resume ? 'Resume upload' : 'Upload'}</button>
        ${running ? html`<button type="button" onClick=${() => abortRef.current?.abort()}>Cancel</button>` : null}
        ${resume && !running ? html`<button type="button" onClick=${() => setResume(undefined)}>Do not resume</button>` : null}
      </div>
    </form>
    ${
      status
        ? html`<div class=${`upload-status phase-${status.phase}`}>
            <label for="upload-progress" class="progress-label">
              ${status.phase === 'done' ? 'Upload done' : status.phase === 'failed' ? 'Upload failed' : status.phase === 'cancelled' ? 'Upload cancelled' : status.phase === 'verifying' ? 'Checking the image' : 'Uploading'}
              ${status.upload ? html` <span class="muted">${status.upload.filename}</span>` : null}
            </label>
            <progress id="upload-progress" max="100" value=${pct} data-phase=${status.phase}>${pct}%</progress>
            <p class="progress-text" role="status">
              ${pct}% — ${bytes(status.sent)} of ${bytes(status.size)}${status.rate ? `, ${rate(status.rate)}` : ''}
              ${status.message ? html`<br /><span class=${status.phase === 'failed' ? 'error-text' : ''}>${status.message}</span>` : null}
            </p>
          </div>`
        : null
    }
    ${
      unfinished.length && !running
        ? html`<div class="unfinished">
            <h3>Unfinished uploads</h3>
            <ul class="unfinished-list">
              ${unfinished.map(
                (u) => html`<li>
                  <span><b>${u.filename}</b> to ${u.kind === 'boot' ? 'boot images' : `group ${u.group}`}: ${bytes(u.received)} of ${bytes(u.size)} (${percent(u.received, u.size)}%)</span>
                  <button type="button" onClick=${() => {
                    setResume(u);
                    setKind(u.kind as 'install' | 'boot');
                    setGroup(u.group);
                    fileRef.current?.focus();
                  }}>Resume…</button>
                  <button type="button" onClick=${async () => {
                    await api.del(`/api/v1/uploads/${seg(u.id)}`).catch(() => undefined);
                    await loadUnfinished();
                  }}>Discard</button>
                </li>`,
              )}
            </ul>
          </div>`
        : null
    }
  </section>`;
}

interface UnattendList {
  templates?: {
    name?: string;
    file?: string;
    kind?: string;
    arch?: string;
    image?: string;
    size?: number;
    error?: string;
  }[];
}

function UnattendSection(): VNode {
  const [list, setList] = useState<UnattendList | 'missing' | undefined>();
  useEffect(() => {
    api
      .get<UnattendList>('/api/v1/unattend')
      .then(setList)
      .catch((e) => setList(isMissingRoute(e) ? 'missing' : { templates: [] }));
  }, []);
  return html`<section class="card" aria-labelledby="unattend-title">
    <h2 id="unattend-title">Unattend templates</h2>
    ${
      list === 'missing' || list === undefined
        ? html`<p class="help">
            Unattend templates are files on the image volume. The box renders them for each machine (its name, domain, and the
            other WDS variables) when the machine deploys:
          </p>
          <ul class="help">
            <li><code>${'unattend/<arch>.xml'}</code> (e.g. <code>unattend/uefi-x64.xml</code>) or <code>unattend/default.xml</code>: per architecture</li>
            <li><code>${'<image file>.unattend.xml'}</code> beside an image (e.g. <code>install-images/hpc/win11.wim.unattend.xml</code>): per image</li>
          </ul>
          <p class="help">.inf files work the same way. Templates with unknown variables are refused at boot with a clear error on the machine's timeline.</p>`
        : list.templates?.length
          ? html`<ul>
              ${list.templates.map((t) => html`<li><span class="mono">${t.file ?? t.name ?? '?'}</span>${t.error ? html` — <span class="error-text">${t.error}</span>` : ''}</li>`)}
            </ul>`
          : html`<p class="muted">No unattend templates on the volume.</p>`
    }
  </section>`;
}
