// Apply: the pending changes (GET /apply/pending, the dry run) before anything else, the
// "Apply now" button only for a token with the apply scope, and the answer per node: how
// Asterisk was reloaded, what the probe said, and whether the files were rolled back. A
// 409 or a failed apply is explained in words.

import { api, describe } from './api.js';
import { h, replace, alertArea, uid } from './dom.js';

function section(title, ...children) {
  const id = uid('sec');
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), children);
}

function list(label, numbers) {
  if (!numbers || numbers.length === 0) return null;
  return h('div', { class: `change ${label.toLowerCase()}` }, h('span', { class: 'change-label' }, `${label} (${numbers.length})`), h('span', { class: 'numbers' }, numbers.join(', ')));
}

function changes(c) {
  return [list('Added', c.added), list('Changed', c.changed), list('Removed', c.removed)];
}

function pendingView(p) {
  const tenants = Object.entries(p.tenants || {});
  const top = (p.added?.length || 0) + (p.changed?.length || 0) + (p.removed?.length || 0);
  if (!p.pending && top === 0 && tenants.length === 0) return [h('p', { class: 'nothing' }, 'Nothing to apply: Asterisk has every change.')];
  const out = [];
  if (top > 0) out.push(tenants.length ? h('h3', {}, 'Tenant default') : null, changes(p));
  for (const [slug, c] of tenants) out.push(h('h3', {}, `Tenant ${slug}`), changes(c));
  return out;
}

const METHOD = { ami: 'reloaded over AMI', cli: 'reloaded with asterisk -rx', none: 'not reloaded' };

function probeText(health) {
  if (!health) return 'no probe';
  if (health.status === 'ok') return `probe passed (${health.checked} extensions proven)`;
  if (health.status === 'failed') {
    const missing = health.missing || [];
    const shown = missing.slice(0, 3).join('; ');
    const more = missing.length > 3 ? ` and ${missing.length - 3} more` : '';
    return `probe failed${missing.length ? `: ${shown}${more}` : ''}`;
  }
  return 'probe skipped';
}

function nodeCard(n) {
  return h(
    'div',
    { class: `node-card status-${n.status}`, 'data-node': n.node },
    h('h3', {}, n.node),
    h(
      'dl',
      {},
      h('dt', {}, 'Outcome'),
      h('dd', { class: 'outcome' }, n.status),
      h('dt', {}, 'Reload'),
      h('dd', {}, `${n.reload?.method ?? 'none'}: ${METHOD[n.reload?.method] ?? ''}`),
      h('dt', {}, 'Probe'),
      h('dd', {}, `${n.health?.status ?? 'skipped'}: ${probeText(n.health)}`),
      n.duration_ms != null ? [h('dt', {}, 'Took'), h('dd', {}, `${n.duration_ms} ms`)] : null,
    ),
    n.rolled_back ? h('p', { class: 'rolled-back' }, 'Rolled back: the previous files were restored on this node.') : null,
    n.error ? h('p', { class: 'node-error' }, `${n.error.code}: ${n.error.message}`) : null,
  );
}

/** Words for a failed apply, from its record's error code. */
function explain(record) {
  const code = record?.error?.code;
  const rolled = (record?.nodes || []).some((n) => n.rolled_back) || record?.rolled_back;
  const why = {
    health_check_failed: 'Asterisk reloaded, but the health probe failed',
    reload_failed: 'Asterisk rejected the reload',
    write_failed: 'the configuration files could not be written',
    node_unreachable: 'a chosen node is not alive, so nothing was asked of it',
    node_timeout: 'a node did not report back in time',
    interrupted: 'the apply was interrupted',
    database_unavailable: 'the database is unavailable',
  }[code] || 'the apply failed';
  return `The apply failed: ${why}. ${rolled ? 'The files were rolled back: Asterisk runs the previous configuration.' : ''} ${record?.error?.message ? `(${record.error.message})` : ''}`.trim();
}

export function applyPage(container, me) {
  const alert = alertArea();
  const pendingBody = h('div', {}, h('p', {}, 'Loading…'));
  const resultBody = h('div', {}, h('p', { class: 'hint' }, 'No apply run from this page yet.'));
  const status = h('p', { role: 'status', class: 'status' });
  const canApply = me.can('apply');

  async function loadPending() {
    try {
      const p = await api('/apply/pending');
      replace(pendingBody, pendingView(p));
    } catch (e) {
      replace(pendingBody, h('p', {}, 'The pending changes could not be read.'));
      alert.show(describe(e));
    }
  }

  function showResult(record) {
    const nodes = record.nodes || [];
    replace(
      resultBody,
      h('p', { class: `apply-status status-${record.status}` }, `Status: ${record.status}${record.duration_ms != null ? ` in ${record.duration_ms} ms` : ''}`),
      nodes.length ? h('div', { class: 'nodes' }, nodes.map(nodeCard)) : null,
    );
  }

  let button = null;
  if (canApply) {
    button = h('button', {
      type: 'button',
      class: 'primary',
      onclick: async () => {
        button.disabled = true;
        alert.clear();
        status.textContent = 'Applying…';
        try {
          const record = await api('/apply', { method: 'POST' });
          showResult(record);
          status.textContent = record.status === 'unchanged' ? 'Nothing changed: Asterisk already had this configuration.' : `Apply ${record.status}.`;
        } catch (e) {
          status.textContent = '';
          if (e.status === 409) {
            alert.show('Not applied: another apply is running on one of these nodes right now. Wait for it to finish, then try again.');
          } else if (e.body && Array.isArray(e.body.nodes)) {
            showResult(e.body);
            alert.show(explain(e.body));
          } else {
            alert.show(describe(e));
          }
        } finally {
          button.disabled = false;
          loadPending();
        }
      },
    }, 'Apply now');
  }

  replace(
    container,
    h('h1', {}, 'Apply'),
    h('p', { class: 'lede' }, 'Changes reach Asterisk only when applied: each node writes its files, reloads and proves the result with its health probe, rolling back on failure.'),
    alert.el,
    section('Pending changes', pendingBody, button ? h('div', { class: 'actions' }, button) : null),
    status,
    section('Result', resultBody),
  );
  loadPending();
}
