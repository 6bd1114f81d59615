/** The shell: sign-in state, header and navigation, live connection, and the page of the route. */
import type { VNode } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { loadSession, onUnauthorized, type Session, signOut } from './api.ts';
import { html } from './html.ts';
import { live, useLive } from './live.ts';
import { DashboardPage } from './pages/dashboard.ts';
import { EventsPage } from './pages/events.ts';
import { ImagesPage } from './pages/images.ts';
import { LoginPage } from './pages/login.ts';
import { MachinePage } from './pages/machine.ts';
import { MachinesPage } from './pages/machines.ts';
import { SettingsPage } from './pages/settings.ts';
import { TransfersPage } from './pages/transfers.ts';
import { href, type Route, useRoute } from './router.ts';
import { Notice } from './ui.ts';

const NAV: { page: string; label: string }[] = [
  { page: '', label: 'Dashboard' },
  { page: 'machines', label: 'Machines' },
  { page: 'images', label: 'Images' },
  { page: 'transfers', label: 'Transfers' },
  { page: 'events', label: 'Events' },
  { page: 'settings', label: 'Settings' },
];

function pageFor(route: Route): VNode {
  switch (route.page) {
    case '':
    case 'dashboard':
      return html`<${DashboardPage} />`;
    case 'machines':
      return route.params[0]
        ? html`<${MachinePage} key=${route.params[0]} id=${route.params[0]} />`
        : html`<${MachinesPage} />`;
    case 'images':
      return html`<${ImagesPage} />`;
    case 'transfers':
      return html`<${TransfersPage} />`;
    case 'events':
      return html`<${EventsPage} />`;
    case 'settings':
      return html`<${SettingsPage} />`;
    default:
      return html`<div class="page">
        <h1 tabindex="-1" class="page-title">Page not found</h1>
        <p>There is no page "${route.page}". <a href=${href('')}>Go to the dashboard</a>.</p>
      </div>`;
  }
}

function ConnectionBadge(): VNode {
  const l = useLive('connection');
  const text = { live: 'live', connecting: 'connecting…', retrying: 'reconnecting…', stopped: 'offline' }[l.connection];
  return html`<span class=${`conn conn-${l.connection}`} role="status" title="Live events from the box">${text}</span>`;
}

export function App(): VNode {
  const [session, setSession] = useState<Session | undefined>();
  const [fatal, setFatal] = useState<string | undefined>();
  const [message, setMessage] = useState<string | undefined>();
  const route = useRoute();
  const mainRef = useRef<HTMLElement>(null);
  const firstRoute = useRef(true);

  useEffect(() => {
    onUnauthorized((msg) => {
      live.stop();
      setMessage(`Your session has ended (${msg}). Sign in again.`);
      setSession((s) => (s ? { ...s, authenticated: false } : s));
    });
    loadSession()
      .then(setSession)
      .catch((e) => setFatal((e as Error).message));
  }, []);

  const authed = Boolean(session?.authenticated);
  useEffect(() => {
    if (authed) live.start();
  }, [authed]);

  // After navigating, move focus to the new page's title (screen readers announce it).
  useEffect(() => {
    if (firstRoute.current) {
      firstRoute.current = false;
      return;
    }
    mainRef.current?.querySelector<HTMLElement>('h1')?.focus();
  }, [route.page, route.params[0]]);

  if (fatal) {
    return html`<main id="main" class="login"><div class="card login-card">
      <p class="brand brand-login">bootbox</p>
      <${Notice} level="error">The box could not be reached: ${fatal}<//>
      <button type="button" onClick=${() => location.reload()}>Try again</button>
    </div></main>`;
  }
  if (!session) return html`<main id="main" class="login"><p class="muted">Loading…</p></main>`;
  if (!session.authenticated) {
    return html`<${LoginPage}
      session=${session}
      message=${message}
      onSignedIn=${(s: Session) => {
        setMessage(undefined);
        setSession(s);
      }}
    />`;
  }

  const current = route.page === 'dashboard' ? '' : route.page;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e: Event) => {
      e.preventDefault();
      mainRef.current?.focus();
    }}>Skip to content</a>
    <header class="top">
      <a class="brand" href=${href('')}>bootbox</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.map(
            (n) => html`<li>
              <a href=${n.page ? href(n.page) : '#/'} aria-current=${current === n.page ? 'page' : undefined}>${n.label}</a>
            </li>`,
          )}
        </ul>
      </nav>
      <div class="who">
        <${ConnectionBadge} />
        <span class="user">${session.user ?? 'admin'}</span>
        <button
          type="button"
          class="link"
          onClick=${async () => {
            live.stop();
            await signOut(session.mode);
            setMessage('Signed out.');
            setSession({ ...session, authenticated: false, setupRequired: false });
          }}
        >
          Sign out
        </button>
      </div>
    </header>
    <main id="main" ref=${mainRef} tabindex="-1">${pageFor(route)}</main>
  </div>`;
}
