// Nodes: every portal sharing this database, its heartbeat, AMI link, registrations and
// last apply (GET /nodes).

import { api, describe } from './api.js';
import { h, replace, alertArea, when } from './dom.js';

export function nodesPage(container) {
  const alert = alertArea();
  const tbody = h('tbody', {});
  const refresh = h('button', { type: 'button', onclick: () => load() }, 'Refresh');

  async function load() {
    try {
      const r = await api('/nodes');
      replace(
        tbody,
        r.nodes.map((n) => {
          const regs = n.registrations;
          const regText = regs && typeof regs === 'object' ? Object.entries(regs).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${k}: ${v}`).join(', ') : '—';
          return h(
            'tr',
            { 'data-node': n.name },
            h('th', { scope: 'row' }, n.name),
            h('td', {}, h('span', { class: 'dot', 'data-registration': n.alive ? 'online' : 'offline' }, n.alive ? 'alive' : 'down')),
            h('td', {}, when(n.last_seen)),
            h('td', {}, n.version),
            h('td', {}, n.pending === null ? 'unknown' : n.pending ? 'yes' : 'no'),
            h('td', {}, n.ami ?? '—'),
            h('td', {}, regText || '—'),
            h('td', {}, n.last_apply ? `${n.last_apply.status}, ${when(n.last_apply.finished_at || n.last_apply.started_at)}` : 'never'),
          );
        }),
      );
      alert.clear();
    } catch (e) {
      alert.show(describe(e));
    }
  }

  replace(
    container,
    h('div', { class: 'page-head' }, h('h1', {}, 'Nodes'), refresh),
    alert.el,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Nodes'),
        h('thead', {}, h('tr', {}, ['Node', 'Alive', 'Last seen', 'Version', 'Pending', 'AMI', 'Registrations', 'Last apply'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody,
      ),
    ),
  );
  load();
}
