// Audit log: who changed what, newest first (GET /audit). The user filter is the API's
// `user` parameter; the actor filter narrows the rows read (the API has no actor filter).

import { api, query, describe } from './api.js';
import { h, replace, field, alertArea, when } from './dom.js';

const LIMIT = 500;

export function auditPage(container) {
  const alert = alertArea();
  const tbody = h('tbody', {});
  const count = h('p', { role: 'status', class: 'status' });
  const actor = h('input', { type: 'text', autocomplete: 'off', placeholder: 'token name, bootstrap or cli' });
  const user = h('input', { type: 'number', min: '1', inputmode: 'numeric', placeholder: 'user id' });
  let entries = [];
  let controller = null;
  let timer = null;

  function render() {
    const a = actor.value.trim().toLowerCase();
    const rows = entries.filter((e) => !a || e.actor.toLowerCase().includes(a));
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
    if (u && !/^[1-9][0-9]*$/.test(u)) {
      alert.show('User: a user id is a positive whole number.');
      return;
    }
    try {
      const r = await api(`/audit${query({ limit: LIMIT, user: u })}`, { signal: mine.signal });
      if (mine !== controller) return;
      entries = r.entries;
      alert.clear();
      render();
    } catch (e) {
      if (e.name !== 'AbortError') alert.show(describe(e));
    }
  }

  actor.addEventListener('input', render);
  user.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(load, 150);
  });

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
