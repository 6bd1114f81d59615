/**
 * Settings: the part of the configuration an admin may change from the UI (GET/PUT
 * /api/v1/settings), with the box's own validation messages next to the field they
 * name, and the audit log of administrative actions.
 */
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, changePassword, isMissingRoute } from '../api.ts';
import { archLabel, dateTime } from '../format.ts';
import { html } from '../html.ts';
import {
  fieldOf,
  type SettingKey as Key,
  patchOf,
  type SettingValues as Values,
  valuesOf,
  withPending,
} from '../settings-values.ts';
import { Notice, PageTitle } from '../ui.ts';
import { type DeployableImage, deployableImages } from './reimage-dialog.ts';

const DEFAULT_IMAGE_ARCHES = ['bios', 'uefi-x64', 'arm64-uefi'];

interface SettingsResponse {
  settings?: unknown;
  pending?: Record<string, unknown>;
  restartRequired?: boolean;
  restartKeys?: string[];
  /** Keys the box put into service at once (PUT answer). */
  applied?: string[];
  shadowedByFlags?: string[];
}

export function SettingsPage(): VNode {
  const [state, setState] = useState<'loading' | 'missing' | 'ready' | 'error'>('loading');
  const [loadError, setLoadError] = useState<string | undefined>();
  const [before, setBefore] = useState<Values | undefined>();
  const [values, setValues] = useState<Values | undefined>();
  const [images, setImages] = useState<DeployableImage[]>([]);
  const [result, setResult] = useState<{ level: 'ok' | 'warn' | 'error'; text: string } | undefined>();
  const [fieldError, setFieldError] = useState<{ key: Key; text: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const [info, setInfo] = useState<{ restartKeys: string[]; shadowed: string[] }>({ restartKeys: [], shadowed: [] });

  useEffect(() => {
    api
      .get<SettingsResponse>('/api/v1/settings')
      .then((r) => {
        // The form shows what the box will run with: changes waiting for a restart included.
        const v = withPending(valuesOf(r.settings ?? r), r.pending);
        setBefore(v);
        setValues(v);
        setInfo({ restartKeys: r.restartKeys ?? [], shadowed: r.shadowedByFlags ?? [] });
        setState('ready');
      })
      .catch((e) => {
        if (isMissingRoute(e)) setState('missing');
        else {
          setLoadError((e as Error).message);
          setState('error');
        }
      });
    void deployableImages().then(setImages);
  }, []);

  const set = <K extends Key>(k: K, v: Values[K]) => {
    setValues((cur) => (cur ? { ...cur, [k]: v } : cur));
    if (fieldError?.key === k) setFieldError(undefined);
  };

  const save = async (e: Event) => {
    e.preventDefault();
    if (!before || !values) return;
    const patch = patchOf(before, values);
    setResult(undefined);
    setFieldError(undefined);
    if (!Object.keys(patch).length) {
      setResult({ level: 'ok', text: 'Nothing changed.' });
      return;
    }
    setBusy(true);
    try {
      const r = await api.put<SettingsResponse>('/api/v1/settings', patch);
      setBefore(values);
      setInfo({ restartKeys: r.restartKeys ?? [], shadowed: r.shadowedByFlags ?? [] });
      const now = r.applied?.length ? `${r.applied.join(', ')} in effect now. ` : '';
      setResult(
        r.restartRequired
          ? {
              level: 'warn',
              text: `Saved. ${now}Restart the box for ${r.restartKeys?.length ? r.restartKeys.join(', ') : 'these changes'} to take effect.`,
            }
          : { level: 'ok', text: 'Saved and in effect now.' },
      );
    } catch (err) {
      const msg = (err as Error).message;
      const key = err instanceof ApiError ? fieldOf(err) : undefined;
      if (key) setFieldError({ key, text: msg });
      setResult({
        level: 'error',
        text: isMissingRoute(err) ? 'This box cannot change its settings over the API.' : `Not saved: ${msg}`,
      });
    } finally {
      setBusy(false);
    }
  };

  const err = (k: Key) =>
    fieldError?.key === k
      ? html`<p id=${`err-${k.replace('.', '-')}`} class="field-error" role="alert">${fieldError.text}</p>`
      : null;
  const described = (k: Key, help: string) => (fieldError?.key === k ? `${help} err-${k.replace('.', '-')}` : help);

  let body: VNode;
  if (state === 'loading') body = html`<p class="muted">Loading…</p>`;
  else if (state === 'missing' || !values) {
    body = html`<${Notice} level=${state === 'error' ? 'error' : 'info'}>
      ${
        state === 'error'
          ? `The settings could not be loaded: ${loadError}`
          : 'This box does not offer its settings over the API. Change them in its config file (/etc/bootbox/config.json) and restart it.'
      }
    <//>`;
  } else {
    const arches = [...new Set([...DEFAULT_IMAGE_ARCHES, ...Object.keys(values['boot.defaultImage'])])];
    body = html`<form class="card settings" onSubmit=${save} novalidate>
      ${
        info.restartKeys.length
          ? html`<${Notice} level="warn">Waiting for a restart of the box: ${info.restartKeys.join(', ')}.<//>`
          : null
      }
      ${
        info.shadowed.length
          ? html`<${Notice} level="info">Set by a command-line flag, which wins over this page: ${info.shadowed.join(', ')}.<//>`
          : null
      }
      <p class="help">Changes are kept on the box (settings.json). New machines, naming and default images take effect at once; DHCP and MQTT when the box restarts. An emptied field goes back to the config file's value.</p>
      <fieldset>
        <legend>New machines</legend>
        <label for="set-unknown">A machine that netboots for the first time</label>
        <select id="set-unknown" value=${values['boot.unknown']} aria-describedby=${described('boot.unknown', 'help-unknown')} onChange=${(e: Event) => set('boot.unknown', (e.target as HTMLSelectElement).value)}>
          <option value="approve">waits for approval (recommended)</option>
          <option value="auto">is approved at once and deploys</option>
          <option value="ignore">is ignored</option>
        </select>
        <p id="help-unknown" class="help">boot.unknown</p>
        ${err('boot.unknown')}
        <label for="set-naming">Naming pattern</label>
        <input
          id="set-naming"
          value=${values['boot.namingPattern']}
          aria-describedby=${described('boot.namingPattern', 'help-naming')}
          aria-invalid=${fieldError?.key === 'boot.namingPattern' ? 'true' : undefined}
          onInput=${(e: Event) => set('boot.namingPattern', (e.target as HTMLInputElement).value)}
        />
        <p id="help-naming" class="help">boot.namingPattern, WDS style: <code>HPC-NODE%03#</code> names machines HPC-NODE001, HPC-NODE002…</p>
        ${err('boot.namingPattern')}
      </fieldset>
      <fieldset>
        <legend>Default image per architecture</legend>
        <p id="help-default-image" class="help">boot.defaultImage: what a machine deploys when neither it nor its group names an image.</p>
        ${arches.map(
          (a) => html`<label for=${`set-di-${a}`}>${archLabel(a)}</label>
            <select
              id=${`set-di-${a}`}
              value=${values['boot.defaultImage'][a] ?? ''}
              aria-describedby=${described('boot.defaultImage', 'help-default-image')}
              onChange=${(e: Event) => set('boot.defaultImage', { ...values['boot.defaultImage'], [a]: (e.target as HTMLSelectElement).value })}
            >
              <option value="">none</option>
              ${
                values['boot.defaultImage'][a] &&
                !images.some(
                  (i) => i.id === values['boot.defaultImage'][a] || i.name === values['boot.defaultImage'][a],
                )
                  ? html`<option value=${values['boot.defaultImage'][a]}>${values['boot.defaultImage'][a]}</option>`
                  : null
              }
              ${images.map((i) => html`<option value=${i.id}>${i.name}${i.description ? ` — ${i.description}` : ''}</option>`)}
            </select>`,
        )}
        ${err('boot.defaultImage')}
      </fieldset>
      <fieldset>
        <legend>DHCP on the private network</legend>
        <label for="set-dhcp-mode">Mode</label>
        <select id="set-dhcp-mode" value=${values['dhcp.mode']} aria-describedby=${described('dhcp.mode', 'help-dhcp-mode')} onChange=${(e: Event) => set('dhcp.mode', (e.target as HTMLSelectElement).value)}>
          <option value="full">full: the box leases addresses</option>
          <option value="proxy">proxy: another DHCP server leases, the box answers PXE only</option>
          <option value="auto">auto: proxy if another DHCP server answers at start, else full</option>
          <option value="off">off</option>
        </select>
        <p id="help-dhcp-mode" class="help">dhcp.mode</p>
        ${err('dhcp.mode')}
        <label for="set-dhcp-range">Address range (full mode)</label>
        <input
          id="set-dhcp-range"
          value=${values['dhcp.range']}
          placeholder="10.0.0.100-10.0.0.199"
          aria-describedby=${described('dhcp.range', 'help-dhcp-range')}
          aria-invalid=${fieldError?.key === 'dhcp.range' ? 'true' : undefined}
          onInput=${(e: Event) => set('dhcp.range', (e.target as HTMLInputElement).value)}
        />
        <p id="help-dhcp-range" class="help">dhcp.range, e.g. 10.0.0.100-10.0.0.199.</p>
        ${err('dhcp.range')}
      </fieldset>
      <fieldset>
        <legend>MQTT</legend>
        <label for="set-mqtt-url">Site broker</label>
        <input
          id="set-mqtt-url"
          value=${values['mqtt.url']}
          placeholder="mqtts://broker.example.org:8883"
          aria-describedby=${described('mqtt.url', 'help-mqtt')}
          aria-invalid=${fieldError?.key === 'mqtt.url' ? 'true' : undefined}
          onInput=${(e: Event) => set('mqtt.url', (e.target as HTMLInputElement).value)}
        />
        <p id="help-mqtt" class="help">mqtt.url (mqtt:// or mqtts://); without one the box runs its own broker on port 1883.</p>
        ${err('mqtt.url')}
      </fieldset>
      <div aria-live="polite">${result ? html`<${Notice} level=${result.level}>${result.text}<//>` : null}</div>
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save'}</button>
        <button type="button" disabled=${busy} onClick=${() => {
          setValues(before);
          setFieldError(undefined);
          setResult(undefined);
        }}>Undo changes</button>
      </div>
    </form>`;
  }

  return html`<div class="page">
    <${PageTitle}>Settings<//>
    ${body}
    <${PasswordCard} />
    <${AuditLog} />
  </div>`;
}

const MIN_PASSWORD = 10;

/** The admin password: the current one, the new one twice. Every other browser is signed out. */
function PasswordCard(): VNode {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ level: 'ok' | 'error'; text: string; field?: string } | undefined>();
  const [fromConfig, setFromConfig] = useState(false);
  useEffect(() => {
    api
      .get<{ passwordFrom?: string }>('/api/v1/session', { quiet401: true })
      .then((s) => setFromConfig(s.passwordFrom === 'config'))
      .catch(() => undefined);
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setResult(undefined);
    if (!current) return setResult({ level: 'error', text: 'Enter the current password.', field: 'pw-current' });
    if ([...next].length < MIN_PASSWORD)
      return setResult({
        level: 'error',
        text: `The new password must be at least ${MIN_PASSWORD} characters long.`,
        field: 'pw-new',
      });
    if (next !== again) return setResult({ level: 'error', text: 'The two new passwords differ.', field: 'pw-again' });
    setBusy(true);
    try {
      const ended = await changePassword(current, next);
      setCurrent('');
      setNext('');
      setAgain('');
      setResult({
        level: 'ok',
        text:
          ended > 1
            ? `Password changed. ${ended - 1} other signed-in browser${ended > 2 ? 's were' : ' was'} signed out.`
            : 'Password changed.',
      });
    } catch (err) {
      const code = err instanceof ApiError ? err.code : undefined;
      setResult({
        level: 'error',
        text: `Not changed: ${(err as Error).message}`,
        ...(code === 'WRONG_PASSWORD' ? { field: 'pw-current' } : code === 'WEAK_PASSWORD' ? { field: 'pw-new' } : {}),
      });
    } finally {
      setBusy(false);
    }
  };

  const invalid = (id: string) => (result?.level === 'error' && result.field === id ? 'true' : undefined);
  const field = (id: string, label: string, value: string, set: (v: string) => void, autocomplete: string) =>
    html`<label for=${id}>${label}</label>
      <input
        id=${id}
        type="password"
        autocomplete=${autocomplete}
        value=${value}
        aria-invalid=${invalid(id)}
        aria-describedby=${invalid(id) ? 'pw-result' : undefined}
        onInput=${(e: Event) => set((e.target as HTMLInputElement).value)}
      />`;

  if (fromConfig) {
    return html`<section class="card" aria-labelledby="pw-title">
      <h2 id="pw-title">Admin password</h2>
      <p class="help">The admin password is set by <code>ui.adminPassword</code> in the box's config file: change it there and restart the box.</p>
    </section>`;
  }
  return html`<section class="card" aria-labelledby="pw-title">
    <h2 id="pw-title">Admin password</h2>
    <form class="settings" onSubmit=${submit} novalidate>
      <p class="help">At least ${MIN_PASSWORD} characters. Changing it signs out every other browser; API tokens keep working.</p>
      ${field('pw-current', 'Current password', current, setCurrent, 'current-password')}
      ${field('pw-new', 'New password', next, setNext, 'new-password')}
      ${field('pw-again', 'New password again', again, setAgain, 'new-password')}
      <div id="pw-result" aria-live="polite">${result ? html`<${Notice} level=${result.level}>${result.text}<//>` : null}</div>
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy}>${busy ? 'Changing…' : 'Change password'}</button>
      </div>
    </form>
  </section>`;
}

interface AuditEntry {
  ts?: string;
  via?: string;
  identity?: string;
  command?: string;
  targets?: unknown;
  result?: string;
  code?: string;
  [k: string]: unknown;
}

/** An audit entry's targets in words ({id: "aa:bb…"} → "aa:bb…"). */
function targetsText(t: unknown): string {
  if (t === undefined || t === null) return '';
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.map(targetsText).join(', ');
  if (typeof t === 'object')
    return Object.values(t as Record<string, unknown>)
      .map(targetsText)
      .join(', ');
  return String(t);
}

function AuditLog(): VNode | null {
  const [entries, setEntries] = useState<AuditEntry[] | 'missing' | undefined>();
  useEffect(() => {
    api
      .get<{ entries?: AuditEntry[] }>('/api/v1/audit?limit=100')
      .then((r) => setEntries(Array.isArray(r.entries) ? r.entries : []))
      .catch(() => setEntries('missing'));
  }, []);
  if (entries === undefined || entries === 'missing') return null;
  return html`<section class="card" aria-labelledby="audit-title">
    <h2 id="audit-title">Audit log</h2>
    <p class="help">Who changed what, over the API, the web UI or MQTT; newest first.</p>
    ${
      entries.length === 0
        ? html`<p class="muted">No administrative action recorded yet.</p>`
        : html`<div class="table-wrap">
            <table class="table-cards">
              <thead><tr><th scope="col">Time</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Result</th></tr></thead>
              <tbody>
                ${entries.map(
                  (e) => html`<tr class=${e.result === 'ok' ? '' : 'level-error'}>
                    <td data-label="Time">${dateTime(e.ts)}</td>
                    <td data-label="Who">${e.identity ?? '–'}${e.via ? html` <span class="muted small">(${e.via})</span>` : null}</td>
                    <td data-label="What" class="break">${e.command ?? '?'} ${targetsText(e.targets)}</td>
                    <td data-label="Result">${e.result ?? '–'}${e.code ? ` (${e.code})` : ''}</td>
                  </tr>`,
                )}
              </tbody>
            </table>
          </div>`
    }
  </section>`;
}
