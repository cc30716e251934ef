// Users: one page of the server's list at a time (search, sort, page and tenant are the
// API's own query parameters, so 10,000 users cost what 50 do), the newest request always
// wins (older ones are aborted), registration dots follow GET /events live, and create,
// edit, rotate secret and delete in dialogs.

import { api, query, describe, rules } from './api.js';
import { h, replace, field, alertArea, uid } from './dom.js';
import { subscribe } from './events.js';
import { openDialog, confirmDialog, secretDialog } from './dialogs.js';

const PAGE_SIZE = 50;
// Every keystroke asks at once (a page of one tenant's or all users is a millisecond's
// query); the request of the keystroke before is aborted, so the newest answer wins. The
// zero delay only folds the events of one paste or one task into one request.
const DEBOUNCE_MS = 0;
const COLUMNS = [
  { key: 'extension', label: 'Extension' },
  { key: 'name', label: 'Name' },
  { key: 'email', label: 'Email' },
];

/** The list's query string for a state of the page. */
function listQuery(st) {
  return query({
    limit: PAGE_SIZE,
    offset: st.page * PAGE_SIZE,
    q: st.q.trim(),
    order: st.order,
    direction: st.direction,
    tenant: st.tenant,
  });
}

const FIRST = { q: '', tenant: '', order: 'extension', direction: 'asc', page: 0 };
let prefetched = null; // {q, at, promise}: the first page, asked before /whoami answered

/** Asks for the first page at once (the router calls it while it asks /whoami, so both
 * are on their way together); the page uses the answer if it is fresh. */
export function prefetchUsers() {
  const q = listQuery(FIRST);
  const early = window.pbxFirstPage; // boot.js asked before the modules ran
  window.pbxFirstPage = null;
  if (early && early.q === q) {
    prefetched = early;
    return;
  }
  prefetched = { q, at: Date.now(), promise: api(`/users${q}`).catch(() => null) };
}

function takePrefetched(q) {
  const p = prefetched;
  prefetched = null;
  return p && p.q === q && Date.now() - p.at < 5000 ? p.promise : null;
}

export function usersPage(container, me) {
  const canWrite = me.can('write');
  const canTenants = me.can('admin') && !me.tenant;
  const st = { ...FIRST, total: 0, users: [] };
  let inflight = null;
  let debounce = null;
  let reloadSoon = null;
  const alert = alertArea();
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const live = h('span', { class: 'live', 'data-live': 'connecting' }, 'Connecting to live status…');

  const search = h('input', {
    type: 'search',
    autocomplete: 'off',
    placeholder: 'Name, email or extension',
    maxlength: '254',
    oninput: () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        st.q = search.value;
        st.page = 0;
        load();
      }, DEBOUNCE_MS);
    },
  });
  const tenantSelect = h('select', {
    onchange: () => {
      st.tenant = tenantSelect.value;
      st.page = 0;
      load();
    },
  }, h('option', { value: '' }, 'All tenants'));
  function loadTenants() {
    api('/tenants')
      .then((r) => {
        for (const t of r.tenants) tenantSelect.append(h('option', { value: t.slug }, `${t.name} (${t.slug})`));
      })
      .catch(() => {});
  }

  const headRow = h('tr', {});
  const tbody = h('tbody', {});
  const table = h('table', { class: 'users' }, h('caption', { class: 'visually-hidden' }, 'Users'), h('thead', {}, headRow), tbody);
  const prev = h('button', { type: 'button', onclick: () => { st.page -= 1; load(); } }, 'Previous');
  const next = h('button', { type: 'button', onclick: () => { st.page += 1; load(); } }, 'Next');
  const pageText = h('span', { class: 'page-text', role: 'status' }, 'Page 1');

  function renderHead() {
    const cells = [h('th', { scope: 'col' }, 'Status')];
    for (const c of COLUMNS) {
      const active = st.order === c.key;
      const sort = active ? (st.direction === 'asc' ? 'ascending' : 'descending') : null;
      cells.push(
        h(
          'th',
          { scope: 'col', 'aria-sort': sort },
          h(
            'button',
            {
              type: 'button',
              class: 'sort',
              onclick: () => {
                if (st.order === c.key) st.direction = st.direction === 'asc' ? 'desc' : 'asc';
                else {
                  st.order = c.key;
                  st.direction = 'asc';
                }
                st.page = 0;
                renderHead();
                load();
              },
            },
            c.label,
            h('span', { class: 'arrow', 'aria-hidden': 'true' }, active ? (st.direction === 'asc' ? ' ▲' : ' ▼') : ''),
          ),
        ),
      );
    }
    cells.push(h('th', { scope: 'col' }, 'Tenant'), h('th', { scope: 'col' }, 'Transport'), h('th', { scope: 'col' }, 'Devices'));
    if (canWrite) cells.push(h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')));
    replace(headRow, cells);
  }

  function dot(state) {
    const s = ['online', 'offline', 'unknown'].includes(state) ? state : 'unknown';
    return h('span', { class: 'dot', 'data-registration': s, title: `Registration: ${s}` }, s);
  }

  function label(u) {
    return u.tenant && u.tenant !== 'default' ? `${u.extension} (${u.tenant})` : `${u.extension}`;
  }

  function row(u) {
    const cells = [
      h('td', { class: 'reg' }, dot(u.registration?.state)),
      h('td', { class: 'num' }, String(u.extension)),
      h('td', { dir: 'auto' }, u.name),
      h('td', { dir: 'auto' }, u.email),
      h('td', {}, u.tenant),
      h('td', {}, u.transport),
      h('td', { class: 'num' }, String(u.devices)),
    ];
    if (canWrite) {
      cells.push(
        h(
          'td',
          { class: 'row-actions' },
          h('button', { type: 'button', 'aria-label': `Edit ${label(u)}`, onclick: () => editDialog(u) }, 'Edit'),
          h('button', { type: 'button', 'aria-label': `Rotate secret ${label(u)}`, onclick: () => rotate(u) }, 'Rotate secret'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${label(u)}`, onclick: () => remove(u) }, 'Delete'),
        ),
      );
    }
    return h('tr', { 'data-user-id': u.id, 'data-extension': u.extension, 'data-tenant': u.tenant, 'data-sip-username': u.sip_username }, cells);
  }

  function renderRows() {
    if (st.users.length === 0) {
      const span = canWrite ? 8 : 7;
      replace(tbody, h('tr', {}, h('td', { colspan: span, class: 'empty' }, st.q ? 'No user matches.' : 'No users yet.')));
    } else {
      replace(tbody, st.users.map(row));
    }
    const pages = Math.max(1, Math.ceil(st.total / PAGE_SIZE));
    pageText.textContent = `Page ${st.page + 1} of ${pages}`;
    status.textContent = `${st.total} ${st.total === 1 ? 'user' : 'users'}`;
    prev.disabled = st.page === 0;
    next.disabled = st.page + 1 >= pages;
  }

  async function load() {
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    const q = listQuery(st);
    try {
      const early = takePrefetched(q);
      const r = (early && (await early)) || (await api(`/users${q}`, { signal: controller.signal }));
      if (inflight !== controller) return;
      inflight = null;
      alert.clear();
      if (r.users.length === 0 && st.page > 0 && r.total > 0) {
        st.page = Math.max(0, Math.ceil(r.total / PAGE_SIZE) - 1);
        load();
        return;
      }
      st.users = r.users;
      st.total = r.total;
      renderRows();
      if (!started) start();
    } catch (e) {
      if (e.name === 'AbortError' || inflight !== controller) return;
      inflight = null;
      alert.show(describe(e));
      if (!started) start();
    }
  }

  function scheduleReload() {
    clearTimeout(reloadSoon);
    reloadSoon = setTimeout(load, 300);
  }

  /** A registration event: the row of its user id, else of its sip_username (unique on
   * the host), else of its tenant (absent: default) and extension. */
  function onRegistration(ev) {
    let rows;
    if (ev.user_id != null) {
      rows = tbody.querySelectorAll(`tr[data-user-id="${Number(ev.user_id)}"]`);
    } else if (typeof ev.sip_username === 'string') {
      rows = tbody.querySelectorAll(`tr[data-sip-username="${CSS.escape(ev.sip_username)}"]`);
    } else {
      const tenant = typeof ev.tenant === 'string' ? ev.tenant : 'default';
      rows = [...tbody.querySelectorAll(`tr[data-extension="${Number(ev.extension)}"]`)].filter(
        (tr) => tr.dataset.tenant === tenant,
      );
    }
    for (const tr of rows) {
      const cell = tr.querySelector('td.reg');
      if (cell) replace(cell, dot(ev.state));
      const u = st.users.find((x) => String(x.id) === tr.dataset.userId);
      if (u) u.registration = { state: ev.state, contacts: ev.contacts || [] };
    }
  }

  // What waits for the first page, so that it does not compete with it: the tenants of the
  // filter and the live stream (which re-reads the page when it opens: nothing is missed).
  let started = false;
  let stop = () => {};
  function start() {
    started = true;
    if (canTenants) loadTenants();
    stop = subscribe({
      onEvent: (type, data) => {
        if (type === 'registration') onRegistration(data);
        else if (type === 'user') {
          const u = data.user;
          if (data.action === 'updated' && u) {
            const i = st.users.findIndex((x) => x.id === u.id);
            if (i >= 0) {
              st.users[i] = { ...st.users[i], ...u };
              const old = tbody.querySelector(`tr[data-user-id="${Number(u.id)}"]`);
              if (old && !old.contains(document.activeElement)) old.replaceWith(row(st.users[i]));
            }
          } else {
            scheduleReload();
          }
        }
      },
      onOpen: () => load(),
      onState: (s) => {
        live.dataset.live = s;
        live.textContent =
          s === 'live' ? 'Live: registrations update as phones change.' : s === 'closed' ? 'Live status is off.' : 'Reconnecting to live status…';
      },
    });
  }

  async function remove(u) {
    const ok = await confirmDialog({
      title: `Delete ${u.name}?`,
      message: `Extension ${u.extension} is freed and the phones stop working after the next apply.`,
      confirmLabel: 'Delete',
      danger: true,
    });
    if (!ok) return;
    try {
      await api(`/users/${u.id}`, { method: 'DELETE' });
      status.textContent = `Deleted ${u.name} (${u.extension}).`;
      load();
    } catch (e) {
      alert.show(describe(e));
    }
  }

  async function rotate(u) {
    const ok = await confirmDialog({
      title: `Rotate the secret of ${u.name}?`,
      message: 'A new SIP password is made; the old one stops working after the next apply.',
      confirmLabel: 'Rotate',
    });
    if (!ok) return;
    try {
      const c = await api(`/users/${u.id}/secret`, { method: 'POST' });
      secretDialog({ username: c.sip_username, password: c.sip_password, transport: u.transport });
    } catch (e) {
      alert.show(describe(e));
    }
  }

  /** The create and edit form; `u` is the user edited (null: a new one). */
  async function userForm(u) {
    const r = await rules();
    const name = h('input', { type: 'text', required: true, maxlength: '100', value: u ? u.name : '', autocomplete: 'off', dir: 'auto' });
    const email = h('input', { type: 'email', required: !u, maxlength: '254', value: u ? u.email : '', autocomplete: 'off' });
    const extension = h('input', { type: 'number', inputmode: 'numeric', min: r.min, max: r.max, value: u ? String(u.extension) : '' });
    const devices = h('input', { type: 'number', min: '1', max: '10', value: u ? String(u.devices) : '1' });
    const transports = [...r.transports];
    if (u && !transports.includes(u.transport)) transports.push(u.transport);
    const transport = h('select', {}, transports.map((t) => h('option', { value: t }, t)));
    if (u) transport.value = u.transport;
    let tenant = null;
    if (!me.tenant) {
      if (u) tenant = h('input', { type: 'text', value: u.tenant, readonly: true });
      else {
        tenant = h('select', {}, h('option', { value: '' }, 'default'));
        if (canTenants) {
          api('/tenants')
            .then((t) => {
              for (const x of t.tenants) if (x.slug !== 'default') tenant.append(h('option', { value: x.slug }, `${x.name} (${x.slug})`));
            })
            .catch(() => {});
        }
      }
    }
    const range = r.min != null && r.max != null ? `${r.min}–${r.max} for the default tenant` : null;
    const fields = [
      field('Name', name),
      field('Email', email),
      field('Extension', extension, u ? 'Moving frees the old number.' : `Optional: empty takes the next free number${range ? ` (${range})` : ''}.`),
      tenant ? field('Tenant', tenant, u ? 'A user cannot move between tenants.' : null) : null,
      field('Transport', transport),
      field('Devices', devices, 'How many phones may register at once (1–10).'),
    ];
    return { fields, name, email, extension, devices, transport, tenant };
  }

  async function createDialog() {
    const f = await userForm(null);
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create');
    const form = h('form', { id: uid('form') }, f.fields);
    const cancel = h('button', { type: 'button', onclick: () => d.close() }, 'Cancel');
    submit.setAttribute('form', form.id);
    const d = openDialog({ title: 'New user', body: [form], actions: [cancel, submit] });
    f.name.focus();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = { name: f.name.value, email: f.email.value };
      if (f.extension.value !== '') body.extension = Number(f.extension.value);
      if (f.devices.value !== '') body.devices = Number(f.devices.value);
      if (f.transport.value) body.transport = f.transport.value;
      if (f.tenant && f.tenant.value) body.tenant = f.tenant.value;
      submit.disabled = true;
      try {
        const created = await api('/users', { method: 'POST', body });
        d.close();
        status.textContent = `Created ${created.name} with extension ${created.extension}.`;
        load();
        secretDialog({ username: created.sip_username, password: created.sip_password, transport: created.transport });
      } catch (e) {
        d.alert.show(describe(e));
        submit.disabled = false;
      }
    });
  }

  async function editDialog(u) {
    const f = await userForm(u);
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const form = h('form', { id: uid('form') }, f.fields);
    const cancel = h('button', { type: 'button', onclick: () => d.close() }, 'Cancel');
    submit.setAttribute('form', form.id);
    const d = openDialog({ title: `Edit ${u.name}`, body: [form], actions: [cancel, submit] });
    f.name.focus();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = {};
      if (f.name.value !== u.name) body.name = f.name.value;
      if (f.email.value !== u.email) body.email = f.email.value;
      if (f.extension.value !== '' && Number(f.extension.value) !== u.extension) body.extension = Number(f.extension.value);
      if (f.devices.value !== '' && Number(f.devices.value) !== u.devices) body.devices = Number(f.devices.value);
      if (f.transport.value && f.transport.value !== u.transport) body.transport = f.transport.value;
      if (Object.keys(body).length === 0) {
        d.close();
        return;
      }
      submit.disabled = true;
      try {
        const saved = await api(`/users/${u.id}`, { method: 'PATCH', body });
        d.close();
        status.textContent = `Saved ${saved.name} (${saved.extension}).`;
        load();
      } catch (e) {
        d.alert.show(describe(e));
        submit.disabled = false;
      }
    });
  }

  renderHead();
  replace(
    container,
    h('div', { class: 'page-head' }, h('h1', {}, 'Users'), canWrite ? h('button', { type: 'button', class: 'primary', onclick: createDialog }, 'New user') : null),
    h(
      'div',
      { class: 'toolbar' },
      field('Search', search),
      canTenants ? field('Tenant', tenantSelect) : null,
      live,
    ),
    alert.el,
    status,
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'pager' }, prev, pageText, next),
  );
  load();

  return () => {
    started = true; // a late first answer starts nothing
    stop();
    clearTimeout(debounce);
    clearTimeout(reloadSoon);
    if (inflight) inflight.abort();
  };
}
