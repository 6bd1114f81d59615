/** Live TFTP and HTTP transfers and uploads, with their rates (from the event stream). */
import type { VNode } from 'preact';
import { bytes, clockTime, duration, percent, rate } from '../format.ts';
import { html } from '../html.ts';
import { useLive, useNow } from '../live.ts';
import { type Transfer, throughput } from '../transfer-log.ts';
import { EmptyState, PageTitle } from '../ui.ts';

const RECENT_SHOWN = 100;
const KIND_LABEL = { tftp: 'TFTP', http: 'HTTP', upload: 'Upload' };

export function TransfersPage(): VNode {
  const l = useLive('transfers');
  const now = useNow(1000);
  const t = l.transfers;
  const active = [...t.active.values()].sort((a, b) => b.startedAt - a.startedAt);
  const tp = throughput(t, now);
  const recent = t.recent.slice(0, RECENT_SHOWN);

  return html`<div class="page">
    <${PageTitle}>Transfers<//>
    <div class="grid grid-3" role="group" aria-label="Throughput over the last 10 seconds">
      ${(['tftp', 'http', 'upload'] as const).map(
        (k) => html`<div class="card stat">
          <span class="stat-label">${KIND_LABEL[k]}</span>
          <span class="stat-value">${rate(tp[k])}</span>
          <span class="muted small">last 10 s</span>
        </div>`,
      )}
    </div>

    <section class="card" aria-labelledby="tr-active">
      <h2 id="tr-active">Running now (${active.length})</h2>
      ${
        active.length === 0
          ? html`<p class="muted">Nothing is being transferred right now.</p>`
          : html`<div class="table-wrap">
              <table class="table-cards">
                <thead>
                  <tr><th scope="col">Kind</th><th scope="col">File</th><th scope="col">Client</th><th scope="col">Progress</th><th scope="col">Rate</th><th scope="col">Running for</th></tr>
                </thead>
                <tbody>
                  ${active.map((x) => html`<${ActiveRow} t=${x} now=${now} />`)}
                </tbody>
              </table>
            </div>`
      }
    </section>

    <section class="card" aria-labelledby="tr-recent">
      <h2 id="tr-recent">Finished (${t.recent.length})</h2>
      ${
        recent.length === 0
          ? html`<${EmptyState} title="No transfers yet.">
              <p>
                Transfers appear here while nodes fetch their boot files over TFTP and HTTP, and while images upload. This page
                shows what happened since it was opened.
              </p>
            <//>`
          : html`<div class="table-wrap">
              <table class="table-cards">
                <thead>
                  <tr><th scope="col">Ended</th><th scope="col">Kind</th><th scope="col">File</th><th scope="col">Client</th><th scope="col">Bytes</th><th scope="col">Time</th><th scope="col">Rate</th><th scope="col">Result</th></tr>
                </thead>
                <tbody>
                  ${recent.map(
                    (x) => html`<tr key=${x.key} class=${x.state === 'failed' ? 'level-error' : ''}>
                      <td data-label="Ended"><time datetime=${new Date(x.updatedAt).toISOString()}>${clockTime(new Date(x.updatedAt).toISOString())}</time></td>
                      <td data-label="Kind">${KIND_LABEL[x.kind]}</td>
                      <td data-label="File" class="mono break">${x.what}</td>
                      <td data-label="Client" class="mono">${x.peer}</td>
                      <td data-label="Bytes">${bytes(x.bytes)}</td>
                      <td data-label="Time">${duration(x.updatedAt - x.startedAt)}</td>
                      <td data-label="Rate">${rate(x.rate)}</td>
                      <td data-label="Result">${x.state === 'failed' ? 'failed' : 'done'}${x.note ? html` <span class="muted small">${x.note}</span>` : null}</td>
                    </tr>`,
                  )}
                </tbody>
              </table>
            </div>`
      }
    </section>
  </div>`;
}

function ActiveRow(props: { t: Transfer; now: number }): VNode {
  const x = props.t;
  const pct = x.size ? percent(x.bytes, x.size) : undefined;
  return html`<tr key=${x.key}>
    <td data-label="Kind">${KIND_LABEL[x.kind]}</td>
    <td data-label="File" class="mono break">${x.what}</td>
    <td data-label="Client" class="mono">${x.peer}</td>
    <td data-label="Progress">
      ${
        pct !== undefined && x.kind === 'upload'
          ? html`<progress class="progress-inline" max="100" value=${pct} aria-label=${`${x.what} progress`}>${pct}%</progress> ${bytes(x.bytes)} of ${bytes(x.size)}`
          : html`${x.size ? `${bytes(x.size)} file` : '–'}${x.note ? html` <span class="muted small">${x.note}</span>` : null}`
      }
    </td>
    <td data-label="Rate">${rate(x.rate)}</td>
    <td data-label="Running for">${duration(props.now - x.startedAt)}</td>
  </tr>`;
}
