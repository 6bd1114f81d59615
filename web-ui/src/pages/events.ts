/** The live event log, with type and MAC filters and a pause. */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { clockTime } from '../format.ts';
import { html } from '../html.ts';
import { useLive } from '../live.ts';
import { href } from '../router.ts';
import type { BoxEvent } from '../sse.ts';
import { describeEvent } from '../timeline.ts';
import { EmptyState, PageTitle } from '../ui.ts';

const SHOWN = 300;
const FAMILIES = ['dhcp', 'tftp', 'http', 'boot', 'machine', 'upload', 'catalog'];

export function familyOf(type: string): string {
  const f = type.split('.')[0] ?? '';
  return FAMILIES.includes(f) ? f : 'other';
}

export function EventsPage(): VNode {
  const l = useLive('events');
  const [family, setFamily] = useState('');
  const [mac, setMac] = useState('');
  const [paused, setPaused] = useState<{ events: BoxEvent[]; received: number } | undefined>();

  const source = paused ? paused.events : l.events;
  const needle = mac.trim().toLowerCase();
  const shown: BoxEvent[] = [];
  for (let i = source.length - 1; i >= 0 && shown.length < SHOWN; i--) {
    const e = source[i]!;
    if (family && familyOf(e.type) !== family) continue;
    if (needle && !(typeof e.mac === 'string' && e.mac.includes(needle))) continue;
    shown.push(e);
  }
  const waiting = paused ? l.received - paused.received : 0;

  return html`<div class="page">
    <${PageTitle}>Events<//>
    <div class="filters">
      <div class="field">
        <label for="ev-type">Type</label>
        <select id="ev-type" value=${family} onChange=${(e: Event) => setFamily((e.target as HTMLSelectElement).value)}>
          <option value="">All events</option>
          ${FAMILIES.map((f) => html`<option value=${f}>${f}.*</option>`)}
          <option value="other">other</option>
        </select>
      </div>
      <div class="field">
        <label for="ev-mac">MAC</label>
        <input id="ev-mac" placeholder="aa:bb:cc…" value=${mac} onInput=${(e: Event) => setMac((e.target as HTMLInputElement).value)} />
      </div>
      <button
        type="button"
        aria-pressed=${paused ? 'true' : 'false'}
        onClick=${() => setPaused(paused ? undefined : { events: [...l.events], received: l.received })}
      >
        ${paused ? 'Resume' : 'Pause'}
      </button>
      <span role="status" class="muted">
        ${paused ? `Paused; ${waiting} new event${waiting === 1 ? '' : 's'} since.` : l.connection === 'live' ? 'Live.' : `Stream ${l.connection}…`}
      </span>
    </div>
    ${
      shown.length === 0
        ? html`<${EmptyState} title=${source.length ? 'No event matches these filters.' : 'No events since this page opened.'}>
            ${source.length ? null : html`<p>Events appear here live as nodes boot, files are served and images change.</p>`}
          <//>`
        : html`<div class="table-wrap">
            <table class="events table-cards">
              <caption class="visually-hidden">Latest ${shown.length} events, newest first</caption>
              <thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">MAC</th><th scope="col">What happened</th></tr></thead>
              <tbody>
                ${shown.map((e) => {
                  const s = describeEvent(e);
                  return html`<tr class=${`level-${s.level}`}>
                    <td data-label="Time"><time datetime=${e.ts}>${clockTime(e.ts)}</time></td>
                    <td data-label="Type" class="mono">${e.type}</td>
                    <td data-label="MAC" class="mono">${e.mac ? html`<a href=${href('machines', e.mac)}>${e.mac}</a>` : '–'}</td>
                    <td data-label="What happened">${s.text}</td>
                  </tr>`;
                })}
              </tbody>
            </table>
          </div>`
    }
  </div>`;
}
