/** Entry point of the web UI bundle (web-ui/build.ts → dist/assets/app.js). */
import { render } from 'preact';
import { App } from './app.ts';
import { html } from './html.ts';

render(html`<${App} />`, document.getElementById('app')!);
