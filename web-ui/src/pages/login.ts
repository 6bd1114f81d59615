/**
 * Signing in: the admin password, or on a fresh box the first-start setup (the setup
 * token the box printed on its console, and a new password). A box without password
 * sign-in takes its API token instead.
 */
import type { VNode } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, rememberApiToken, type Session, setUp, signIn } from '../api.ts';
import { html } from '../html.ts';
import { Notice } from '../ui.ts';

function explain(e: unknown): string {
  if (!(e instanceof ApiError)) return (e as Error).message;
  if (e.status === 429) {
    return `Too many sign-in attempts. Wait ${e.retryAfter ? `${e.retryAfter} seconds` : 'a while'} and try again.`;
  }
  if (e.status === 401) return `${e.message || 'Wrong password.'}`;
  return e.message;
}

export function LoginPage(props: {
  session: Session;
  message?: string | undefined;
  onSignedIn: (s: Session) => void;
}): VNode {
  const { session } = props;
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    if (session.setupRequired && password !== repeat) {
      setError('The two passwords differ. Type the same new password twice.');
      return;
    }
    setBusy(true);
    try {
      if (session.mode === 'token') props.onSignedIn(rememberApiToken(token.trim()));
      else if (session.setupRequired) props.onSignedIn(await setUp(token.trim(), password));
      else props.onSignedIn(await signIn(password));
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  };

  const title =
    session.mode === 'token' ? 'Sign in with the API token' : session.setupRequired ? 'Set up this box' : 'Sign in';
  return html`<main id="main" class="login">
    <form class="card login-card" onSubmit=${submit} aria-describedby="login-help">
      <p class="brand brand-login">bootbox</p>
      <h1>${title}</h1>
      ${props.message ? html`<${Notice} level="warn">${props.message}<//>` : null}
      ${
        session.mode === 'token'
          ? html`<p id="login-help" class="help">
                This box has no password sign-in. Use its API token: the file <code>api-token</code> in the box's data
                directory (for example <code>/var/lib/bootbox/api-token</code>).
              </p>
              <label for="login-token">API token</label>
              <input
                id="login-token"
                type="password"
                autocomplete="off"
                required
                value=${token}
                onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)}
              />`
          : session.setupRequired
            ? html`<p id="login-help" class="help">
                  First start: choose the admin password. The setup token is printed by the box on its console, in the
                  line that starts with <code>bootbox ready</code>.
                </p>
                <label for="setup-token">Setup token</label>
                <input
                  id="setup-token"
                  autocomplete="off"
                  required
                  value=${token}
                  onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)}
                />
                <label for="new-password">New admin password (at least 10 characters)</label>
                <input
                  id="new-password"
                  type="password"
                  autocomplete="new-password"
                  required
                  value=${password}
                  onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)}
                />
                <label for="repeat-password">New admin password, again</label>
                <input
                  id="repeat-password"
                  type="password"
                  autocomplete="new-password"
                  required
                  value=${repeat}
                  onInput=${(e: Event) => setRepeat((e.target as HTMLInputElement).value)}
                />`
            : html`<p id="login-help" class="help">Sign in with the box's admin password.</p>
                <label for="login-password">Password</label>
                <input
                  id="login-password"
                  type="password"
                  autocomplete="current-password"
                  required
                  value=${password}
                  onInput=${(e: Event) => setPassword((e.target as HTMLInputElement).value)}
                />`
      }
      ${error ? html`<${Notice} level="error">${error}<//>` : null}
      <button type="submit" class="primary" disabled=${busy}>
        ${busy ? 'Signing in…' : session.setupRequired ? 'Set password and sign in' : 'Sign in'}
      </button>
    </form>
  </main>`;
}
