/** Small shared pieces: dialog, notices, empty states, state badges, buttons. */
import type { ComponentChildren, VNode } from 'preact';
import { useEffect, useId, useRef } from 'preact/hooks';
import { stateLabel } from './format.ts';
import { html } from './html.ts';

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal dialog (the native <dialog>, shown with showModal so the page behind is inert).
 * Tab and Shift+Tab stay inside it; Escape calls onClose; focus goes back where it was.
 * Render it only while open.
 */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  /** Extra class (e.g. "dialog-wide"). */
  class?: string;
}): VNode {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current!;
    const before = document.activeElement as HTMLElement | null;
    if (!d.open) d.showModal();
    const first = d.querySelector<HTMLElement>('[autofocus]') ?? d.querySelector<HTMLElement>(FOCUSABLE);
    first?.focus();
    return () => {
      if (d.open) d.close();
      // The opener may be re-rendered (live updates) while the dialog is open or just after
      // it closes, and a replaced element takes the focus with it: find the opener again by
      // its id, and for half a second give it the focus back whenever the focus fell to the
      // page itself (never taking it from where the user moved it).
      const id = before?.id;
      const find = () => (before?.isConnected ? before : id ? document.getElementById(id) : null);
      find()?.focus?.();
      let checks = 0;
      const timer = setInterval(() => {
        const now = document.activeElement;
        if (!now || now === document.body) find()?.focus?.();
        if (++checks >= 10) clearInterval(timer);
      }, 50);
    };
  }, []);
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== 'Tab') return;
    const items = [...ref.current!.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.offsetParent !== null);
    if (!items.length) return;
    const first = items[0]!;
    const last = items.at(-1)!;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };
  const onCancel = (e: Event) => {
    e.preventDefault();
    props.onClose();
  };
  return html`<dialog
    ref=${ref}
    class=${`dialog ${props.class ?? ''}`}
    aria-labelledby=${titleId}
    onKeyDown=${onKeyDown}
    onCancel=${onCancel}
  >
    <h2 id=${titleId}>${props.title}</h2>
    ${props.children}
  </dialog>`;
}

/** A message in the page: errors are announced (role=alert), others are polite (role=status). */
export function Notice(props: { level?: 'info' | 'ok' | 'warn' | 'error'; children: ComponentChildren }): VNode {
  const level = props.level ?? 'info';
  return html`<div class=${`notice notice-${level}`} role=${level === 'error' ? 'alert' : 'status'}>
    ${props.children}
  </div>`;
}

/** What a fresh box's admin sees where there is nothing yet: what it means and what to do next. */
export function EmptyState(props: { title: string; children?: ComponentChildren }): VNode {
  return html`<div class="empty">
    <p class="empty-title">${props.title}</p>
    ${props.children}
  </div>`;
}

export function StateBadge(props: { state: string }): VNode {
  return html`<span class=${`badge badge-${props.state.replace(/[^a-z-]/g, '')}`}>${stateLabel(props.state)}</span>`;
}

/** The page's title; focused after navigation so screen readers announce the new page. */
export function PageTitle(props: { children: ComponentChildren; actions?: ComponentChildren }): VNode {
  return html`<div class="page-head">
    <h1 tabindex="-1" class="page-title">${props.children}</h1>
    ${props.actions ? html`<div class="page-actions">${props.actions}</div>` : null}
  </div>`;
}

/** An on/off switch as a real button (aria-pressed). */
export function Toggle(props: { on: boolean; label: string; busy?: boolean; onChange: (on: boolean) => void }): VNode {
  return html`<button
    type="button"
    class=${`toggle ${props.on ? 'toggle-on' : 'toggle-off'}`}
    aria-pressed=${props.on ? 'true' : 'false'}
    aria-label=${props.label}
    disabled=${props.busy}
    onClick=${() => props.onChange(!props.on)}
  >
    ${props.on ? 'Enabled' : 'Disabled'}
  </button>`;
}

/** A definition list of label → value rows (values rendered as text). */
export function Facts(props: { rows: [string, ComponentChildren][] }): VNode {
  return html`<dl class="facts">
    ${props.rows.map(([k, v]) => html`<div class="fact"><dt>${k}</dt><dd>${v ?? '–'}</dd></div>`)}
  </dl>`;
}
