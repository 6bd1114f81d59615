/** The box at a glance: version, uptime, interfaces, services and their counters, image store, machines. */
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { bytes, clockTime, duration, STATES } from '../format.ts';
import { html } from '../html.ts';
import { live, useLive, useNow } from '../live.ts';
import { href } from '../router.ts';
import { describeEvent } from '../timeline.ts';
import { EmptyState, Facts, Notice, PageTitle } from '../ui.ts';

interface Health {
  version: string;
  commit?: string;
  arch?: string;
  uptimeSeconds: number;
  interfaces: { name: string; role: string; mac?: string; ipv4?: string; prefix?: number; mtu?: number }[];
  services: Record<string, Record<string, unknown>>;
  counters?: Record<string, unknown>;
  volumes?: unknown;
}

export interface ImagesSummary {
  count: number;
  images: { id: string; enabled: boolean; available: boolean; kind: string }[];
  problems: unknown[];
  volume: { state: string; reason?: string };
  lastScan: { at: string; files: number } | null;
}

const HEALTH_REFRESH_MS = 10_000;

/** A service's status as rows: nested counters one level deep ("counters.sent"), long lists shortened. */
export function statusRows(status: unknown, prefix = ''): [string, string][] {
  if (typeof status !== 'object' || status === null) return [[prefix || 'status', String(status)]];
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(status as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v === null || v === undefined) continue;
    if (Array.isArray(v))
      rows.push([key, v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ')]);
    else if (typeof v === 'object') {
      if (prefix.split('.').length >= 2) rows.push([key, JSON.stringify(v)]);
      else rows.push(...statusRows(v, key));
    } else rows.push([key, String(v)]);
  }
  return rows;
}

/** A status key in words: "counters.bytesSent" → "bytes sent", "pools.private.size" → "pools · private · size". */
export function keyLabel(key: string): string {
  return key
    .replace(/^counters\./, '')
    .split('.')
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase())
    .join(' · ');
}

export function DashboardPage(): VNode {
  const l = useLive('machines', 'events', 'connection');
  const now = useNow(1000);
  const [health, setHealth] = useState<{ h: Health; at: number } | undefined>();
  const [healthError, setHealthError] = useState<string | undefined>();
  const [images, setImages] = useState<ImagesSummary | undefined>();

  useEffect(() => {
    let alive = true;
    const load = async () => {
      try {
        const h = await api.get<Health>('/api/v1/health');
        if (alive) {
          setHealth({ h, at: Date.now() });
          setHealthError(undefined);
        }
      } catch (e) {
        if (alive) setHealthError((e as Error).message);
      }
    };
    void load();
    const t = setInterval(load, HEALTH_REFRESH_MS);
    // services' counters move with the traffic: refresh a little after news, at most once a second
    let pending: ReturnType<typeof setTimeout> | undefined;
    const off = live.onEvents(() => {
      pending ??= setTimeout(() => {
        pending = undefined;
        void load();
      }, 1000);
    });
    return () => {
      alive = false;
      clearInterval(t);
      clearTimeout(pending);
      off();
    };
  }, []);

  useEffect(() => {
    const load = () =>
      api
        .get<ImagesSummary>('/api/v1/images')
        .then(setImages)
        .catch(() => undefined);
    void load();
    return live.subscribe('catalog', () => void load());
  }, []);

  const machines = [...l.machines.values()];
  const counts = new Map<string, number>();
  for (const m of machines) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  const pending = counts.get('pending') ?? 0;
  const h = health?.h;
  const uptime = h ? h.uptimeSeconds * 1000 + (now - health.at) : undefined;
  const priv = h?.interfaces.find((i) => i.role === 'private');
  const recent = l.events.slice(-8).reverse();

  return html`<div class="page">
    <${PageTitle}>Dashboard<//>
    ${healthError ? html`<${Notice} level="error">Box health could not be read: ${healthError}<//>` : null}
    ${
      pending
        ? html`<${Notice} level="warn">
            <a href=${href('machines')}>${pending} machine${pending === 1 ? ' is' : 's are'} waiting for approval</a>.
          <//>`
        : null
    }
    <div class="grid">
      <section class="card" aria-labelledby="dash-box">
        <h2 id="dash-box">Box</h2>
        ${
          h
            ? html`<${Facts}
                rows=${[
                  ['Version', h.version],
                  ['Build', `${h.arch ?? ''} ${h.commit ? `commit ${h.commit}` : ''}`.trim() || '–'],
                  ['Uptime', duration(uptime)],
                  ['Live events', l.connection === 'live' ? 'connected' : l.connection],
                ]}
              />`
            : html`<p class="muted">Loading…</p>`
        }
      </section>

      <section class="card" aria-labelledby="dash-machines">
        <h2 id="dash-machines">Machines</h2>
        ${
          machines.length === 0
            ? html`<${EmptyState} title="No machine has netbooted yet.">
                <p>
                  Connect the nodes to the box's private port${priv ? html` (<b>${priv.name}</b>, ${priv.ipv4})` : ''}
                  and set them to boot from the network (PXE) first. Each new node appears under
                  <a href=${href('machines')}>Machines</a>, waiting for your approval.
                </p>
              <//>`
            : html`<ul class="counts">
                ${STATES.filter((s) => counts.get(s.state)).map(
                  (s) =>
                    html`<li><span class="count">${counts.get(s.state)}</span> <span class=${`badge badge-${s.state}`}>${s.label}</span></li>`,
                )}
              </ul>
              <p><a href=${href('machines')}>All ${machines.length} machines</a></p>`
        }
      </section>

      <section class="card" aria-labelledby="dash-images">
        <h2 id="dash-images">Image store</h2>
        ${
          images
            ? html`${
                images.volume.state === 'attached'
                  ? html`<p><span class="badge badge-deployed">attached</span></p>`
                  : html`<${Notice} level="error">Image volume ${images.volume.state}: ${images.volume.reason ?? ''}<//>`
              }
              ${imageVolumeFacts(h)}
              ${
                images.count === 0
                  ? html`<${EmptyState} title="No images yet.">
                      <p>Add one on the <a href=${href('images')}>Images</a> page: upload a Windows image (.wim) or a disk image (.img).</p>
                    <//>`
                  : html`<p>
                      ${`${images.count} image${images.count === 1 ? '' : 's'}, ${images.images.filter((i) => i.enabled && i.available).length} ready to deploy`}
                      ${
                        images.problems.length
                          ? html`<br /><a href=${href('images')}>${images.problems.length} problem(s) on the volume</a>`
                          : null
                      }
                    </p>`
              }`
            : html`<p class="muted">Loading…</p>`
        }
      </section>
    </div>

    <section class="card" aria-labelledby="dash-ifaces">
      <h2 id="dash-ifaces">Interfaces</h2>
      ${
        h
          ? html`<div class="table-wrap">
              <table>
                <thead><tr><th scope="col">Interface</th><th scope="col">Role</th><th scope="col">IPv4</th><th scope="col">MAC</th><th scope="col">MTU</th></tr></thead>
                <tbody>
                  ${h.interfaces.map(
                    (i) => html`<tr>
                      <td>${i.name}</td>
                      <td>${i.role === 'private' ? 'private (boot services)' : i.role === 'uplink' ? 'uplink (UI, API, MQTT)' : i.role}</td>
                      <td>${i.ipv4 ? `${i.ipv4}/${i.prefix ?? ''}` : '–'}</td>
                      <td class="mono">${i.mac ?? '–'}</td>
                      <td>${i.mtu ?? '–'}</td>
                    </tr>`,
                  )}
                </tbody>
              </table>
            </div>`
          : html`<p class="muted">Loading…</p>`
      }
    </section>

    <section aria-labelledby="dash-services">
      <h2 id="dash-services">Services</h2>
      <div class="grid">
        ${
          h
            ? Object.entries(h.services).map(([name, status]) => {
                const rows = statusRows(status);
                return html`<section class="card service" aria-label=${`Service ${name}`}>
                  <h3>${name}</h3>
                  ${
                    rows.length
                      ? html`<dl class="facts facts-compact">
                          ${rows.slice(0, 10).map(([k, v]) => html`<div class="fact"><dt title=${k}>${keyLabel(k)}</dt><dd>${v}</dd></div>`)}
                        </dl>
                        ${
                          rows.length > 10
                            ? html`<details>
                                <summary>All ${rows.length} values</summary>
                                <dl class="facts facts-compact">
                                  ${rows.slice(10).map(([k, v]) => html`<div class="fact"><dt title=${k}>${keyLabel(k)}</dt><dd>${v}</dd></div>`)}
                                </dl>
                              </details>`
                            : null
                        }`
                      : html`<p class="muted">running</p>`
                  }
                </section>`;
              })
            : null
        }
      </div>
    </section>

    <section class="card" aria-labelledby="dash-activity">
      <h2 id="dash-activity">Recent activity</h2>
      ${
        recent.length
          ? html`<ul class="activity">
              ${recent.map((e) => {
                const s = describeEvent(e);
                return html`<li class=${`level-${s.level}`}>
                  <time datetime=${e.ts}>${clockTime(e.ts)}</time>
                  ${e.mac ? html`<a class="mono" href=${href('machines', e.mac)}>${e.mac}</a>` : null}
                  <span>${s.text}</span>
                </li>`;
              })}
            </ul>
            <p><a href=${href('events')}>All events</a></p>`
          : html`<p class="muted">Nothing has happened since this page opened. Boots, transfers and uploads show up here live.</p>`
      }
    </section>
  </div>`;
}

/** Volume facts from health (the volume service, when the box watches an image drive). */
function imageVolumeFacts(h: Health | undefined): VNode | null {
  const rows: [string, string][] = [];
  // free space of the data directory and the image store (health.volumes)
  const spaces = (Array.isArray(h?.volumes) ? h.volumes : []) as Array<Record<string, unknown>>;
  for (const s of spaces) {
    if (typeof s.freeBytes === 'number' && typeof s.totalBytes === 'number') {
      rows.push([`Free on ${String(s.name)}`, `${bytes(s.freeBytes)} of ${bytes(s.totalBytes)}`]);
    }
  }
  const v = h?.services.volume as Record<string, unknown> | undefined;
  if (!v) return rows.length ? html`<${Facts} rows=${rows} />` : null;
  const vol = (v.volume ?? {}) as Record<string, unknown>;
  if (typeof v.mountpoint === 'string') rows.push(['Mounted at', v.mountpoint]);
  for (const k of ['label', 'fstype', 'device']) if (typeof vol[k] === 'string') rows.push([k, vol[k] as string]);
  for (const k of ['size', 'free', 'available'])
    if (typeof vol[k] === 'number') rows.push([k, bytes(vol[k] as number)]);
  return rows.length ? html`<${Facts} rows=${rows} />` : null;
}
