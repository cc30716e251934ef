// Tokens: the named tokens (GET /tokens), a form to make one (its text is shown once, in
// a dialog) and revoke with a confirmation. Admin scope only.

import { api, describe } from './api.js';
import { h, replace, field, alertArea, when, uid } from './dom.js';
import { openDialog, confirmDialog, copyButton } from './dialogs.js';

const SCOPES = ['read', 'write', 'apply', 'metrics', 'admin'];

export function tokensPage(container, me) {
  const alert = alertArea();
  const status = h('p', { role: 'status', class: 'status' });
  const tbody = h('tbody', {});

  async function load() {
    try {
      const r = await api('/tokens');
      replace(
        tbody,
        r.tokens.length === 0
          ? h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No named tokens yet.'))
          : r.tokens.map((t) =>
              h(
                'tr',
                { 'data-token': t.name },
                h('th', { scope: 'row' }, t.name),
                h('td', {}, t.scopes.join(', ')),
                h('td', {}, t.tenant ?? 'every tenant'),
                h('td', {}, when(t.created_at)),
                h('td', {}, t.expires_at ? when(t.expires_at) : 'never'),
                h('td', {}, t.last_used_at ? when(t.last_used_at) : 'never'),
                h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${t.name}`, onclick: () => revoke(t.name) }, 'Revoke')),
              ),
            ),
      );
    } catch (e) {
      alert.show(describe(e));
    }
  }

  async function revoke(name) {
    const ok = await confirmDialog({
      title: `Revoke ${name}?`,
      message: 'Every request with this token is refused from now on, on every node.',
      confirmLabel: 'Revoke',
      danger: true,
    });
    if (!ok) return;
    try {
      await api(`/tokens/${encodeURIComponent(name)}`, { method: 'DELETE' });
      status.textContent = `Revoked ${name}.`;
      load();
    } catch (e) {
      alert.show(describe(e));
    }
  }

  const name = h('input', { type: 'text', required: true, maxlength: '64', pattern: '[A-Za-z0-9._\\-]+', autocomplete: 'off' });
  const boxes = SCOPES.map((s) => {
    const id = uid('scope');
    const box = h('input', { type: 'checkbox', id, value: s, checked: s === 'read' });
    return { s, box, el: h('div', { class: 'check' }, box, h('label', { for: id }, s)) };
  });
  let tenant = null;
  if (!me.tenant) {
    tenant = h('select', {}, h('option', { value: '' }, 'Every tenant (unbound)'));
    api('/tenants')
      .then((r) => {
        for (const t of r.tenants) tenant.append(h('option', { value: t.slug }, `${t.name} (${t.slug})`));
      })
      .catch(() => {});
  }
  const days = h('input', { type: 'number', min: '1', max: '36500', inputmode: 'numeric' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create token');
  const form = h(
    'form',
    { class: 'card token-form' },
    h('h2', {}, 'Make a token'),
    field('Name', name, 'Letters, digits, dot, dash and underscore.'),
    h('fieldset', {}, h('legend', {}, 'Scopes'), boxes.map((b) => b.el)),
    tenant ? field('Tenant', tenant) : null,
    field('Expires in days', days, 'Empty: never expires.'),
    create,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const scopes = boxes.filter((b) => b.box.checked).map((b) => b.s);
    const body = { name: name.value.trim(), scopes };
    if (tenant && tenant.value) body.tenant = tenant.value;
    if (days.value) body.expires_in_days = Number(days.value);
    create.disabled = true;
    alert.clear();
    try {
      const made = await api('/tokens', { method: 'POST', body });
      form.reset();
      boxes.forEach((b) => {
        b.box.checked = b.s === 'read';
      });
      load();
      showToken(made);
    } catch (e) {
      alert.show(describe(e));
    } finally {
      create.disabled = false;
    }
  });

  function showToken(made) {
    const value = h('code', { 'data-testid': 'new-token', class: 'secret' }, made.token);
    const close = h('button', { type: 'button', class: 'primary', onclick: () => d.close() }, 'Close');
    const d = openDialog({
      title: 'New token',
      body: [
        h('p', { class: 'once' }, `The token ${made.name} is shown only once: copy it now.`),
        h('p', {}, value),
        h('p', { class: 'hint' }, `Scopes: ${made.scopes.join(', ')}${made.tenant ? `; tenant ${made.tenant}` : ''}.`),
      ],
      actions: [...copyButton('Copy token', made.token, value), close],
    });
    close.focus();
  }

  replace(
    container,
    h('h1', {}, 'Tokens'),
    alert.el,
    status,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        {},
        h('caption', { class: 'visually-hidden' }, 'Tokens'),
        h('thead', {}, h('tr', {}, ['Name', 'Scopes', 'Tenant', 'Created', 'Expires', 'Last used', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody,
      ),
    ),
    form,
  );
  load();
}
