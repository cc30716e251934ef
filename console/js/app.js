// The router: hash routes (#/users, #/apply, …), the session (who is signed in, from
// GET /whoami), the main navigation offering only what the token's scopes allow, and a
// 401 from anywhere sending the tab back to sign-in.

import { api, session, whenUnauthorized } from './api.js';
import { h, replace } from './dom.js';
import { signinPage } from './signin.js';
import { usersPage, prefetchUsers } from './users.js';
import { applyPage } from './apply.js';
import { importPage } from './import.js';
import { nodesPage } from './nodes.js';
import { auditPage } from './audit.js';
import { tokensPage } from './tokens.js';

// Each page: its route, link text, the scope it needs and what renders it.
const PAGES = [
  { route: 'users', label: 'Users', scope: 'read', render: usersPage },
  { route: 'apply', label: 'Apply', scope: 'apply', render: applyPage },
  { route: 'import', label: 'Import', scope: 'write', render: importPage },
  { route: 'nodes', label: 'Nodes', scope: 'read', render: nodesPage },
  { route: 'audit', label: 'Audit', scope: 'read', render: auditPage },
  { route: 'tokens', label: 'Tokens', scope: 'admin', render: tokensPage },
];

const state = {
  me: null, // {name, scopes, tenant} once signed in
  cleanup: null, // what the current page closes when left (its event stream)
  notice: null, // a message for the sign-in page (signed out)
  checked: false, // whether /whoami was asked since this tab loaded
};

const main = () => document.getElementById('main');

// The last /whoami answer of this tab, so that a reload paints the page without waiting
// for it; it is asked again in the background (and a 401 signs out as anywhere).
const ME_KEY = 'pbx-portal.whoami';
function cachedMe() {
  try {
    const me = JSON.parse(sessionStorage.getItem(ME_KEY));
    return me && Array.isArray(me.scopes) ? me : null;
  } catch {
    return null;
  }
}
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What the pages know about the caller. */
function caller() {
  const me = state.me;
  return {
    ...me,
    can: (scope) => me.scopes.includes(scope),
  };
}

function allowed(page) {
  return state.me && state.me.scopes.includes(page.scope);
}

function go(route) {
  if (location.hash !== `#/${route}`) location.hash = `#/${route}`;
  else render();
}

function signOut(notice) {
  session.clear();
  sessionStorage.removeItem(ME_KEY);
  state.me = null;
  state.notice = notice || null;
  go('signin');
}

function header(current) {
  const slot = document.getElementById('session');
  if (!state.me) {
    replace(slot);
    return;
  }
  const me = state.me;
  const who = me.name === null ? 'bootstrap token' : me.name;
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      {},
      PAGES.filter(allowed).map((p) =>
        h(
          'li',
          {},
          h('a', { href: `#/${p.route}`, 'aria-current': p.route === current ? 'page' : null }, p.label),
        ),
      ),
    ),
  );
  replace(
    slot,
    nav,
    h(
      'span',
      { class: 'whoami', 'data-testid': 'whoami' },
      'Signed in as ',
      h('strong', {}, who),
      me.tenant ? [' · tenant ', h('strong', {}, me.tenant)] : null,
    ),
    h('button', { type: 'button', class: 'link', onclick: () => signOut() }, 'Sign out'),
  );
}

let rendering = 0;
async function render() {
  const ticket = ++rendering;
  if (state.cleanup) {
    state.cleanup();
    state.cleanup = null;
  }
  const route = location.hash.replace(/^#\/?/, '');
  if (!session.token()) {
    state.me = null;
    state.checked = false;
    sessionStorage.removeItem(ME_KEY);
    if (route !== 'signin') return go('signin');
    header();
    // The notice stays until the next sign-in: a navigation that comes after the 401 (a
    // tab already sent here by another request) shows it again.
    signinPage(main(), {
      notice: state.notice,
      onSignedIn: (me) => {
        state.notice = null;
        state.me = me;
        state.checked = true;
        sessionStorage.setItem(ME_KEY, JSON.stringify(me));
        go('users');
      },
    });
    return;
  }
  if (!state.me) state.me = cachedMe();
  if (state.me) {
    if (!state.checked) {
      state.checked = true;
      api('/whoami')
        .then((me) => {
          sessionStorage.setItem(ME_KEY, JSON.stringify(me));
          if (!same(me, state.me)) {
            state.me = me;
            render();
          }
        })
        .catch(() => {});
    }
  } else {
    try {
      state.me = await api('/whoami');
      state.checked = true;
      sessionStorage.setItem(ME_KEY, JSON.stringify(state.me));
    } catch {
      // a 401 already signed out; anything else: try again at the next navigation
      if (session.token()) replace(main(), h('p', { role: 'alert' }, 'The server could not be reached.'));
      return;
    }
    if (ticket !== rendering) return;
  }
  const page = PAGES.find((p) => p.route === route);
  if (!page || !allowed(page)) {
    const first = PAGES.find(allowed);
    if (first && route !== first.route) return go(first.route);
    if (!first) {
      header();
      replace(main(), h('h1', {}, 'Nothing to show'), h('p', {}, 'This token has no scope the console can use.'));
      return;
    }
  }
  header(page.route);
  const container = main();
  replace(container);
  document.title = `${page.label === 'Audit' ? 'Audit log' : page.label} · pbx-portal`;
  const cleanup = page.render(container, caller());
  state.cleanup = typeof cleanup === 'function' ? cleanup : null;
  container.focus({ preventScroll: true });
}

whenUnauthorized(() => {
  if (!session.token()) return;
  signOut('You were signed out: the token was not accepted any more.');
});

window.addEventListener('hashchange', render);
// The users page is where a tab usually opens: its first page is asked for now, while the
// modules and /whoami are on their way, not after them.
if (session.token() && /^(#\/?(users)?)?$/.test(location.hash)) prefetchUsers();
render();
