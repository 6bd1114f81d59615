/**
 * One machine (#/machines/<mac>): its record, what can be done with it, and its boots
 * told in words (DHCP → TFTP → HTTP → deploy), refreshed live as its events arrive.
 */
import type { VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, seg } from '../api.ts';
import { ago, archLabel, clockTime, dateTime } from '../format.ts';
import { html } from '../html.ts';
import { live, type Machine, useNow } from '../live.ts';
import { href } from '../router.ts';
import { type Boot, describeEvent, groupBoots, PHASES, type TimelineEntry } from '../timeline.ts';
import { EmptyState, Facts, Notice, PageTitle, StateBadge } from '../ui.ts';
import { machineLabel } from './machines.ts';
import { type DeployableImage, deployableImages, ReimageDialog } from './reimage-dialog.ts';

const BOOTS_SHOWN = 5;

export function MachinePage(props: { id: string }): VNode {
  const [data, setData] = useState<{ machine: Machine; timeline: TimelineEntry[] } | undefined>();
  const [error, setError] = useState<{ status: number; message: string } | undefined>();
  const [reimage, setReimage] = useState(false);
  const [message, setMessage] = useState<{ level: 'ok' | 'error'; text: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const now = useNow(15_000);

  useEffect(() => {
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ip: string | undefined;
    let mac: string | undefined;
    const load = async () => {
      try {
        const r = await api.get<{ machine: Machine; timeline: TimelineEntry[] }>(`/api/v1/machines/${seg(props.id)}`);
        if (!alive) return;
        ip = r.machine.ip;
        mac = r.machine.mac;
        setData(r);
        setError(undefined);
      } catch (e) {
        if (alive) setError({ status: e instanceof ApiError ? e.status : 0, message: (e as Error).message });
      }
    };
    void load();
    // Refetch (at most every 700 ms) when an event concerns this machine: by MAC, or by its address (TFTP/HTTP).
    const off = live.onEvents((batch) => {
      const mine = batch.some(
        (e) => (mac && e.mac === mac) || (ip && (e.address === ip || e.peer === ip)) || (!mac && e.mac === props.id),
      );
      if (mine && !timer) {
        timer = setTimeout(() => {
          timer = undefined;
          void load();
        }, 700);
      }
    });
    return () => {
      alive = false;
      clearTimeout(timer);
      off();
    };
  }, [props.id]);

  if (error && !data) {
    return html`<div class="page">
      <${PageTitle}>Machine ${props.id}<//>
      <${Notice} level="error">
        ${error.status === 404 ? `The box knows no machine "${props.id}".` : `This machine could not be loaded: ${error.message}`}
      <//>
      <p><a href=${href('machines')}>Back to the machines</a></p>
    </div>`;
  }
  if (!data) return html`<div class="page"><p class="muted">Loading…</p></div>`;

  const m = data.machine;
  const act = async (action: 'approve' | 'reject') => {
    setBusy(true);
    try {
      const r = await api.post<{ machine: Machine }>(`/api/v1/machines/${seg(m.mac)}/${action}`);
      live.putMachine(r.machine);
      setData({ ...data, machine: r.machine });
      setMessage({ level: 'ok', text: `${machineLabel(m)} ${action === 'approve' ? 'approved' : 'rejected'}.` });
    } catch (e) {
      setMessage({ level: 'error', text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  };
  const boots = groupBoots(data.timeline);
  // The record's address, else the last one the box's DHCP acknowledged.
  const ip =
    m.ip ??
    [...data.timeline]
      .reverse()
      .find((e) => e.type === 'dhcp.reply' && e.messageType === 'ACK' && typeof e.yiaddr === 'string')?.yiaddr;
  const canReimage = ['approved', 'deploying', 'deployed'].includes(m.state);

  return html`<div class="page">
    <p class="crumbs"><a href=${href('machines')}>Machines</a> / <span>${m.name ?? m.mac}</span></p>
    <${PageTitle}
      actions=${html`
        ${
          m.state === 'pending'
            ? html`<button type="button" class="primary" disabled=${busy} onClick=${() => act('approve')}>Approve</button>
                <button type="button" disabled=${busy} onClick=${() => act('reject')}>Reject</button>`
            : null
        }
        ${canReimage ? html`<button type="button" class="danger" onClick=${() => setReimage(true)}>Reimage…</button>` : null}
      `}
    >
      ${m.name ?? m.mac} <${StateBadge} state=${m.state} />
    <//>
    <div aria-live="polite">${message ? html`<${Notice} level=${message.level}>${message.text}<//>` : null}</div>

    <div class="grid grid-2">
      <section class="card" aria-labelledby="m-record">
        <h2 id="m-record">Record</h2>
        <${Facts}
          rows=${[
            ['MAC', html`<span class="mono">${m.mac}</span>`],
            ['State', html`<${StateBadge} state=${m.state} /> since ${dateTime(m.stateSince)}`],
            ['Why', m.stateReason],
            ['Architecture', `${archLabel(m.arch)} (${m.firmware})`],
            ['IP address', typeof ip === 'string' ? ip : '–'],
            ['SMBIOS UUID', m.uuid ?? '–'],
            ['Image', m.image ?? 'the default for its group or architecture'],
            ['Group', m.group ?? '–'],
            ...(m.reimage
              ? [
                  [
                    'Reimage request',
                    `${m.reimage.mode}${m.reimage.image ? `, image ${m.reimage.image}` : ''}, ${dateTime(m.reimage.requestedAt)}${m.reimage.by ? ` by ${m.reimage.by}` : ''}`,
                  ] as [string, string],
                ]
              : []),
            ['First seen', dateTime(m.firstSeen)],
            ['Last seen', `${ago(m.lastSeen, now)} (${dateTime(m.lastSeen)})`],
            ['Boots', String(m.bootCount)],
            [
              'Last boot',
              m.lastBoot
                ? `${dateTime(m.lastBoot.at)}: ${m.lastBoot.action}${m.lastBoot.file ? ` ${m.lastBoot.file}` : ''}${m.lastBoot.image ? ` (image ${m.lastBoot.image})` : ''}`
                : '–',
            ],
          ]}
        />
      </section>
      <${EditMachine}
        machine=${m}
        onSaved=${(saved: Machine) => {
          live.putMachine(saved);
          setData({ ...data, machine: saved });
        }}
      />
    </div>

    <section aria-labelledby="m-boots">
      <h2 id="m-boots">Last boots</h2>
      ${
        boots.length === 0
          ? html`<${EmptyState} title="Nothing recorded yet.">
              <p>Each time this machine boots from the network, its DHCP, TFTP, HTTP and deploy steps show up here, live.</p>
            <//>`
          : boots.slice(0, BOOTS_SHOWN).map((b, i) => html`<${BootCard} boot=${b} latest=${i === 0} />`)
      }
    </section>

    ${
      data.timeline.length
        ? html`<details class="card">
            <summary>Full timeline (${data.timeline.length} events)</summary>
            <div class="table-wrap">
              <table class="timeline">
                <thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">What happened</th></tr></thead>
                <tbody>
                  ${[...data.timeline].reverse().map((e) => {
                    const s = describeEvent(e);
                    return html`<tr class=${`level-${s.level}`}>
                      <td><time datetime=${e.ts}>${dateTime(e.ts)}</time></td>
                      <td class="mono">${e.type}</td>
                      <td>${s.text}</td>
                    </tr>`;
                  })}
                </tbody>
              </table>
            </div>
          </details>`
        : null
    }
    ${
      reimage
        ? html`<${ReimageDialog} machines=${[m]} onClose=${(done?: string) => {
            setReimage(false);
            if (done) setMessage({ level: 'ok', text: done });
          }} />`
        : null
    }
  </div>`;
}

function BootCard(props: { boot: Boot; latest: boolean }): VNode {
  const b = props.boot;
  return html`<article class=${`card boot outcome-${b.outcome.level}`}>
    <h3>
      ${b.netboot ? 'Boot' : 'Changes'} at <time datetime=${b.start}>${dateTime(b.start)}</time>
      ${props.latest ? html` <span class="badge">latest</span>` : null}
    </h3>
    <p class=${`outcome level-${b.outcome.level}`}>${b.outcome.text}</p>
    <div class="phases">
      ${PHASES.map(({ phase, label }) => {
        const steps = b.steps.filter((s) => s.phase === phase);
        if (!steps.length) return null;
        return html`<section class="phase" aria-label=${label}>
          <h4>${label}</h4>
          <ol class="steps">
            ${steps.map(
              (s) => html`<li class=${`level-${s.level}`}>
                <time datetime=${s.ts}>${clockTime(s.ts)}</time>
                <span>${s.text}</span>
              </li>`,
            )}
          </ol>
        </section>`;
      })}
    </div>
  </article>`;
}

function EditMachine(props: { machine: Machine; onSaved: (m: Machine) => void }): VNode {
  const m = props.machine;
  const [name, setName] = useState(m.name ?? '');
  const [image, setImage] = useState(m.image ?? '');
  const [images, setImages] = useState<DeployableImage[]>([]);
  const [error, setError] = useState<string | undefined>();
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    void deployableImages().then(setImages);
  }, []);
  useEffect(() => {
    setName(m.name ?? '');
    setImage(m.image ?? '');
  }, [m.mac]);

  const save = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    const patch: Record<string, unknown> = {};
    if (name.trim() !== (m.name ?? '')) patch.name = name.trim();
    if (image !== (m.image ?? '')) patch.image = image || null;
    if (!Object.keys(patch).length) return;
    setBusy(true);
    try {
      const r = await api.put<{ machine: Machine }>(`/api/v1/machines/${seg(m.mac)}`, patch);
      props.onSaved(r.machine);
      setSaved(true);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const known = images.some((i) => i.id === m.image || i.name === m.image);
  return html`<form class="card" onSubmit=${save} aria-labelledby="m-edit">
    <h2 id="m-edit">Settings</h2>
    <label for="m-name">Name</label>
    <input
      id="m-name"
      value=${name}
      aria-describedby=${error ? 'm-edit-error' : undefined}
      onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)}
    />
    <label for="m-image">Image</label>
    <select id="m-image" value=${image} onChange=${(e: Event) => setImage((e.target as HTMLSelectElement).value)}>
      <option value="">Default (its group's or its architecture's)</option>
      ${m.image && !known ? html`<option value=${m.image}>${m.image}</option>` : null}
      ${images.map((i) => html`<option value=${i.id}>${i.name}${i.description ? ` — ${i.description}` : ''}</option>`)}
    </select>
    ${error ? html`<p id="m-edit-error" class="field-error" role="alert">${error}</p>` : null}
    ${saved ? html`<p role="status" class="ok-text">Saved.</p>` : null}
    <button type="submit" disabled=${busy}>Save</button>
  </form>`;
}
