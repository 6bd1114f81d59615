/**
 * Machines: pending approvals first, then the table with filters, selection and reimage.
 * The table shows one page (100 rows) at a time and each row re-renders only when its
 * own record changes, so 1,000 machines and a boot storm's events stay fast.
 */
import { Component, type VNode } from 'preact';
import { useState } from 'preact/hooks';
import { api, seg } from '../api.ts';
import { ago, archLabel, STATES } from '../format.ts';
import { html } from '../html.ts';
import { live, type Machine, useLive, useNow } from '../live.ts';
import { href } from '../router.ts';
import { Dialog, EmptyState, Notice, PageTitle, StateBadge } from '../ui.ts';
import { ReimageDialog } from './reimage-dialog.ts';

export const PAGE_SIZE = 100;
const PENDING_SHOWN = 20;

type SortKey = 'name' | 'state' | 'lastSeen' | 'ip';

/** Filters survive leaving the page and coming back. */
const saved = { q: '', state: '', page: 0, sort: 'name' as SortKey, desc: false };

export const machineLabel = (m: Machine) => (m.name ? `${m.name} (${m.mac})` : m.mac);

const compact = (s: string) => s.toLowerCase().replace(/[:.-]/g, '');

export function matches(m: Machine, q: string): boolean {
  if (!q) return true;
  const needle = q.trim().toLowerCase();
  if (!needle) return true;
  const hay = [m.name, m.mac, m.ip, m.image, m.group, m.arch].filter(Boolean).join(' ').toLowerCase();
  if (hay.includes(needle)) return true;
  const c = compact(needle);
  return c.length >= 4 && compact(m.mac).includes(c);
}

function sortValue(m: Machine, key: SortKey): string {
  switch (key) {
    case 'name':
      return (m.name ?? m.mac).toLowerCase();
    case 'state':
      return String(STATES.findIndex((s) => s.state === m.state)).padStart(2, '0') + (m.name ?? m.mac);
    case 'lastSeen':
      return m.lastSeen ?? '';
    case 'ip':
      return (m.ip ?? '')
        .split('.')
        .map((p) => p.padStart(3, '0'))
        .join('.');
  }
}

interface RowProps {
  m: Machine;
  selected: boolean;
  /** The clock rounded to 30 s: "last seen" labels move, rows re-render rarely. */
  tick: number;
  onSelect: (mac: string, on: boolean) => void;
}

/** One machine row; re-rendered only when its record, its selection or the coarse clock changes. */
class Row extends Component<RowProps> {
  override shouldComponentUpdate(next: RowProps): boolean {
    return next.m !== this.props.m || next.selected !== this.props.selected || next.tick !== this.props.tick;
  }

  override render(): VNode {
    const { m, selected, tick } = this.props;
    const name = m.name ?? m.mac;
    return html`<tr class=${selected ? 'selected' : ''}>
      <td class="col-select">
        <input
          type="checkbox"
          checked=${selected}
          aria-label=${`Select ${name}`}
          onChange=${(e: Event) => this.props.onSelect(m.mac, (e.target as HTMLInputElement).checked)}
        />
      </td>
      <td data-label="Name"><a href=${href('machines', m.mac)}>${name}</a></td>
      <td data-label="State"><${StateBadge} state=${m.state} /></td>
      <td data-label="MAC" class="mono">${m.mac}</td>
      <td data-label="Arch">${archLabel(m.arch)}</td>
      <td data-label="IP" class="mono">${m.ip ?? '–'}</td>
      <td data-label="Last seen"><time datetime=${m.lastSeen} title=${m.lastSeen}>${ago(m.lastSeen, tick)}</time></td>
      <td data-label="Image">${m.reimage?.image ?? m.image ?? '–'}</td>
    </tr>`;
  }
}

export function MachinesPage(): VNode {
  const l = useLive('machines');
  const now = useNow(30_000);
  const tick = Math.floor(now / 30_000) * 30_000;
  const [q, setQ] = useState(saved.q);
  const [state, setState] = useState(saved.state);
  const [page, setPage] = useState(saved.page);
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: saved.sort, desc: saved.desc });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [reimage, setReimage] = useState<Machine[] | undefined>();
  const [approveAll, setApproveAll] = useState(false);
  const [busy, setBusy] = useState<Set<string>>(new Set());
  const [message, setMessage] = useState<{ level: 'ok' | 'error'; text: string } | undefined>();
  Object.assign(saved, { q, state, page, sort: sort.key, desc: sort.desc });

  const all = [...l.machines.values()];
  const pending = all.filter((m) => m.state === 'pending').sort((a, b) => b.firstSeen.localeCompare(a.firstSeen));
  const counts = new Map<string, number>();
  for (const m of all) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);

  const filtered = all.filter((m) => (!state || m.state === state) && matches(m, q));
  filtered.sort((a, b) => {
    const c = sortValue(a, sort.key).localeCompare(sortValue(b, sort.key));
    return sort.desc ? -c : c;
  });
  const pages = Math.max(1, Math.ceil(filtered.length / PAGE_SIZE));
  const current = Math.min(page, pages - 1);
  const shown = filtered.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);
  const selectedMachines = [...selected].map((mac) => l.machines.get(mac)).filter((m): m is Machine => Boolean(m));

  const onSelect = (mac: string, on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(mac);
      else n.delete(mac);
      return n;
    });
  const allShownSelected = shown.length > 0 && shown.every((m) => selected.has(m.mac));
  const selectShown = (on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      for (const m of shown)
        if (on) n.add(m.mac);
        else n.delete(m.mac);
      return n;
    });

  const act = async (m: Machine, action: 'approve' | 'reject'): Promise<boolean> => {
    setBusy((b) => new Set(b).add(m.mac));
    try {
      const r = await api.post<{ machine: Machine }>(`/api/v1/machines/${seg(m.mac)}/${action}`);
      live.putMachine(r.machine);
      setMessage({ level: 'ok', text: `${machineLabel(m)} ${action === 'approve' ? 'approved' : 'rejected'}.` });
      return true;
    } catch (e) {
      setMessage({ level: 'error', text: `${machineLabel(m)} could not be ${action}d: ${(e as Error).message}` });
      return false;
    } finally {
      setBusy((b) => {
        const n = new Set(b);
        n.delete(m.mac);
        return n;
      });
    }
  };

  const sortHeader = (key: SortKey, label: string) => {
    const active = sort.key === key;
    return html`<th scope="col" aria-sort=${active ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick=${() => setSort({ key, desc: active ? !sort.desc : false })}>
        ${label}<span aria-hidden="true">${active ? (sort.desc ? ' ▼' : ' ▲') : ''}</span>
      </button>
    </th>`;
  };

  return html`<div class="page">
    <${PageTitle}>Machines<//>
    <div aria-live="polite" class="live-region">
      ${message ? html`<${Notice} level=${message.level}>${message.text}<//>` : null}
    </div>
    ${l.machinesError ? html`<${Notice} level="error">The machine list could not be loaded: ${l.machinesError}<//>` : null}

    ${
      pending.length
        ? html`<section class="card pending" aria-labelledby="pending-title">
            <div class="section-head">
              <h2 id="pending-title">Waiting for approval (${pending.length})</h2>
              ${
                pending.length > 1
                  ? html`<button type="button" onClick=${() => setApproveAll(true)}>Approve all ${pending.length}…</button>`
                  : null
              }
            </div>
            <p class="help">Approved machines deploy their image at their next netboot; rejected ones get no boot answer.</p>
            <ul class="pending-list">
              ${pending.slice(0, PENDING_SHOWN).map(
                (m) => html`<li class="pending-item" key=${m.mac}>
                  <span class="pending-who">
                    <a href=${href('machines', m.mac)}>${m.name ?? m.mac}</a>
                    <span class="mono muted">${m.mac}</span>
                    <span class="muted">${archLabel(m.arch)}, first seen ${ago(m.firstSeen, tick)}</span>
                  </span>
                  <span class="pending-actions">
                    <button type="button" class="primary" disabled=${busy.has(m.mac)} onClick=${() => act(m, 'approve')} aria-label=${`Approve ${m.name ?? m.mac}`}>
                      Approve
                    </button>
                    <button type="button" disabled=${busy.has(m.mac)} onClick=${() => act(m, 'reject')} aria-label=${`Reject ${m.name ?? m.mac}`}>
                      Reject
                    </button>
                  </span>
                </li>`,
              )}
            </ul>
            ${
              pending.length > PENDING_SHOWN
                ? html`<p>
                    <button type="button" class="link" onClick=${() => setState('pending')}>Show all ${pending.length} in the table</button>
                  </p>`
                : null
            }
          </section>`
        : null
    }

    ${
      !l.machinesLoaded && !l.machinesError
        ? html`<p class="muted">Loading machines…</p>`
        : all.length === 0
          ? html`<${EmptyState} title="No machines yet.">
              <p>
                A machine appears here the first time it boots from the network on the box's private port. Set the nodes' firmware
                to boot from the network (PXE) first, and power them on. New machines wait for your approval here before anything is
                written to their disks.
              </p>
            <//>`
          : html`<section aria-labelledby="all-title">
              <h2 id="all-title" class="visually-hidden">All machines</h2>
              <div class="filters" role="search">
                <div class="field">
                  <label for="machine-search">Search</label>
                  <input
                    id="machine-search"
                    type="search"
                    placeholder="name, MAC, IP, image"
                    value=${q}
                    onInput=${(e: Event) => {
                      setQ((e.target as HTMLInputElement).value);
                      setPage(0);
                    }}
                  />
                </div>
                <div class="field">
                  <label for="machine-state">State</label>
                  <select
                    id="machine-state"
                    value=${state}
                    onChange=${(e: Event) => {
                      setState((e.target as HTMLSelectElement).value);
                      setPage(0);
                    }}
                  >
                    <option value="">All states (${all.length})</option>
                    ${STATES.map((s) => html`<option value=${s.state}>${s.label} (${counts.get(s.state) ?? 0})</option>`)}
                  </select>
                </div>
                ${
                  q || state
                    ? html`<button
                        type="button"
                        onClick=${() => {
                          setQ('');
                          setState('');
                          setPage(0);
                        }}
                      >
                        Clear filters
                      </button>`
                    : null
                }
              </div>

              <div class="bulk" aria-live="polite">
                <span>${selected.size ? `${selected.size} selected` : 'Select machines to reimage them together.'}</span>
                ${
                  selected.size
                    ? html`<button type="button" id="reimage-selected" class="danger" onClick=${() => setReimage(selectedMachines)}>Reimage ${selected.size}…</button>
                        <button type="button" onClick=${() => setSelected(new Set())}>Clear selection</button>`
                    : null
                }
              </div>

              ${
                filtered.length === 0
                  ? html`<${EmptyState} title="No machine matches these filters." />`
                  : html`<div class="table-wrap">
                      <table class="machines table-cards">
                        <caption class="visually-hidden">Machines, page ${current + 1} of ${pages}</caption>
                        <thead>
                          <tr>
                            <th scope="col" class="col-select">
                              <input
                                type="checkbox"
                                checked=${allShownSelected}
                                aria-label="Select all machines on this page"
                                onChange=${(e: Event) => selectShown((e.target as HTMLInputElement).checked)}
                              />
                            </th>
                            ${sortHeader('name', 'Name')}
                            ${sortHeader('state', 'State')}
                            <th scope="col">MAC</th>
                            <th scope="col">Arch</th>
                            ${sortHeader('ip', 'IP')}
                            ${sortHeader('lastSeen', 'Last seen')}
                            <th scope="col">Image</th>
                          </tr>
                        </thead>
                        <tbody>
                          ${shown.map((m) => html`<${Row} key=${m.mac} m=${m} selected=${selected.has(m.mac)} tick=${tick} onSelect=${onSelect} />`)}
                        </tbody>
                      </table>
                    </div>
                    <nav class="pager" aria-label="Machine pages">
                      <button type="button" disabled=${current === 0} onClick=${() => setPage(current - 1)}>Previous</button>
                      <span>
                        ${current * PAGE_SIZE + 1}–${current * PAGE_SIZE + shown.length} of ${filtered.length}
                      </span>
                      <button type="button" disabled=${current >= pages - 1} onClick=${() => setPage(current + 1)}>Next</button>
                    </nav>`
              }
            </section>`
    }

    ${
      reimage
        ? html`<${ReimageDialog}
            machines=${reimage}
            onClose=${(done?: string) => {
              setReimage(undefined);
              if (done) {
                setSelected(new Set());
                setMessage({ level: 'ok', text: done });
              }
            }}
          />`
        : null
    }
    ${
      approveAll
        ? html`<${ApproveAllDialog}
            machines=${pending}
            act=${act}
            onClose=${(text?: string) => {
              setApproveAll(false);
              if (text) setMessage({ level: 'ok', text });
            }}
          />`
        : null
    }
  </div>`;
}

function ApproveAllDialog(props: {
  machines: Machine[];
  act: (m: Machine, a: 'approve') => Promise<boolean>;
  onClose: (text?: string) => void;
}): VNode {
  const [busy, setBusy] = useState(false);
  const n = props.machines.length;
  const go = async () => {
    setBusy(true);
    let ok = 0;
    for (const m of props.machines) if (await props.act(m, 'approve')) ok++;
    setBusy(false);
    props.onClose(`${ok} of ${n} machines approved.`);
  };
  return html`<${Dialog} title=${`Approve ${n} machines`} onClose=${() => !busy && props.onClose()}>
    <p>Each approved machine deploys its image at its next netboot, which erases its disk:</p>
    <ul class="name-list">
      ${props.machines.map((m) => html`<li>${machineLabel(m)}</li>`)}
    </ul>
    <div class="dialog-actions">
      <button type="button" onClick=${() => props.onClose()} disabled=${busy}>Cancel</button>
      <button type="button" class="primary" onClick=${go} disabled=${busy}>${busy ? 'Approving…' : `Approve ${n}`}</button>
    </div>
  <//>`;
}
