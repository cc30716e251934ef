// Audit log: who changed what, newest first (GET /audit). Both filters are the API's:
// `actor` (a token's name, bootstrap or cli, exact) and `user` (a user id).

import { api, query, describe } from './api.js';
import { h, replace, field, alertArea, when } from './dom.js';

const LIMIT = 500;

export function auditPage(container) {
  const alert = alertArea();
  const tbody = h('tbody', {});
  const count = h('p', { role: 'status', class: 'status' });
  const actor = h('input', { type: 'text', autocomplete: 'off', placeholder: 'token name, bootstrap or cli' });
  const user = h('input', { type: 'number', min: '1', inputmode: 'numeric', placeholder: 'user id' });
  let controller = null;
  let timer = null;

  function render(rows) {
    count.textContent = `${rows.length} ${rows.length === 1 ? 'entry' : 'entries'}`;
    replace(
      tbody,
      rows.map((e) =>
        h(
          'tr',
          { 'data-audit': e.id },
          h('td', {}, when(e.at)),
          h('td', {}, e.actor),
          h('td', {}, e.action),
          h('td', {}, e.user_id != null ? String(e.user_id) : e.token ?? (e.apply_id != null ? `apply ${e.apply_id}` : '—')),
          h('td', {}, e.tenant ?? '—'),
          h('td', {}, e.fields ? e.fields.join(', ') : ''),
        ),
      ),
    );
  }

  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    const u = user.value.trim();
    const a = actor.value.trim();
    if (u && !/^[1-9][0-9]*$/.test(u)) {
      alert.show('User: a user id is a positive whole number.');
      return;
    }
    if (a && !/^[A-Za-z0-9._-]{1,64}$/.test(a)) {
      alert.show('Actor: a token name (letters, digits, . _ -), bootstrap or cli.');
      return;
    }
    try {
      const r = await api(`/audit${query({ limit: LIMIT, user: u, actor: a })}`, { signal: mine.signal });
      if (mine !== controller) return;
      alert.clear();
      render(r.entries);
    } catch (e) {
      if (e.name !== 'AbortError') alert.show(describe(e));
    }
  }

  for (const input of [actor, user]) {
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    });
  }

  replace(
    container,
    h('h1', {}, 'Audit log'),
    h('div', { class: 'toolbar' }, field('Actor', actor), field('User', user, 'A user id.')),
    alert.el,
    count,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Audit log'),
        h('thead', {}, h('tr', {}, ['When', 'Actor', 'Action', 'About', 'Tenant', 'Fields'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody,
      ),
    ),
  );
  load();
  return () => clearTimeout(timer);
}
