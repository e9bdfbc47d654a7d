// The admin UI's shell: sign-in, the hash router and the status line. Pages live in pages/;
// each is an async function (main, params, query) that fills `main` and returns its title.

import { resume, signIn, signOut, whenSignedOut } from './api.js';
import { h, formValues } from './dom.js';
import { say } from './status.js';
import { overviewPage } from './pages/overview.js';
import { orgsPage } from './pages/orgs.js';
import { orgPage } from './pages/org.js';
import { monitorPage } from './pages/monitor.js';
import { billingPage } from './pages/billing.js';
import { disputesPage } from './pages/disputes.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');

const routes = [
  [/^\/$/, overviewPage, 'overview'],
  [/^\/orgs$/, orgsPage, 'orgs'],
  [/^\/orgs\/([^/]+)$/, orgPage, 'orgs'],
  [/^\/orgs\/([^/]+)\/monitors\/([^/]+)$/, monitorPage, 'orgs'],
  [/^\/billing$/, billingPage, 'billing'],
  [/^\/disputes$/, disputesPage, 'disputes'],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path, query: new URLSearchParams(search) };
}

let rendering = 0;

async function route() {
  const { path, query } = parseHash();
  const match = routes.find(([re]) => re.test(path));
  const ticket = ++rendering;
  for (const link of nav.querySelectorAll('a[data-nav]')) {
    link.toggleAttribute('aria-current', false);
    if (match && link.dataset.nav === match[2]) link.setAttribute('aria-current', 'page');
  }
  if (!match) {
    main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  const params = path.match(match[0]).slice(1).map(decodeURIComponent);
  const fresh = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(fresh);
  try {
    const title = await match[1](fresh, params, query);
    if (ticket !== rendering) return;
    fresh.removeAttribute('aria-busy');
    document.title = `${title} · Driftlock admin`;
    main.focus({ preventScroll: true });
  } catch (e) {
    if (ticket !== rendering) return;
    fresh.replaceChildren(h('h1', {}, 'Could not load this page'), h('p', { class: 'error' }, e.message));
  }
}

function showSignIn(message) {
  nav.hidden = true;
  document.title = 'Sign in · Driftlock admin';
  const form = h('form', { class: 'stack', id: 'sign-in' },
    h('label', {}, 'Admin token',
      h('input', { name: 'token', type: 'password', autocomplete: 'current-password', required: true, id: 'token' })),
    h('p', { class: 'muted' }, 'The token is in admin.token in the data directory, or in DRIFTLOCK_ADMIN_TOKEN.'),
    h('button', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await signIn(formValues(form).token.trim());
      say('Signed in.');
      start();
    } catch (e) {
      say(e.status === 401 ? 'That token is not valid.' : e.message, 'error');
    }
  });
  main.replaceChildren(h('div', { class: 'signin' }, h('h1', {}, 'Sign in'), form));
  if (message) say(message, 'error');
  form.querySelector('input').focus();
}

function start() {
  nav.hidden = false;
  route();
}

document.getElementById('sign-out').addEventListener('click', async () => {
  await signOut().catch(() => {});
  say('Signed out.');
  showSignIn();
});
whenSignedOut(() => showSignIn('Your session has ended; sign in again.'));
window.addEventListener('hashchange', () => {
  if (!nav.hidden) route();
});

resume().then((signedIn) => (signedIn ? start() : showSignIn()))
  .catch((e) => showSignIn(e.message));

