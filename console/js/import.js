// Import: a CSV dropped or chosen is dry-run at once (POST /users/import?dry_run=true);
// every bad row is listed with its field and message and nothing can be imported until the
// file is clean; the import itself shows the new SIP secrets once (as a CSV to download).
// Export downloads GET /users/export as users.csv.

import { api, describe } from './api.js';
import { h, replace, field, alertArea } from './dom.js';

/** Data rows of a CSV text (records after the header; quoted line breaks stay inside). */
export function countRows(text) {
  let records = 0;
  let quoted = false;
  let content = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === '\n' && !quoted) {
      if (content) records += 1;
      content = false;
    } else if (ch !== '\r') {
      content = true;
    }
  }
  if (content) records += 1;
  return Math.max(0, records - 1);
}

/** A CSV cell, quoted, and never read as a formula by a spreadsheet. */
function cell(v) {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, class: 'visually-hidden' }, filename);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return `console-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export function importPage(container) {
  const alert = alertArea();
  const status = h('p', { role: 'status', class: 'status' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const results = h('div', {});
  const input = h('input', { type: 'file', accept: '.csv,text/csv' });
  const importButton = h('button', { type: 'button', class: 'primary', disabled: true }, 'Import');
  const why = h('p', { class: 'hint', id: 'import-why' }, 'Choose a file first: it is checked before anything is created.');
  importButton.setAttribute('aria-describedby', why.id);
  let file = null; // {name, text, key}

  async function dryRun(chosen) {
    alert.clear();
    replace(status);
    replace(results);
    importButton.disabled = true;
    const text = await chosen.text();
    file = { name: chosen.name, text, key: newKey() };
    const rows = countRows(text);
    summary.textContent = `Checking ${chosen.name}…`;
    try {
      const plan = await api('/users/import?dry_run=true', { method: 'POST', body: text, headers: { 'Content-Type': 'text/csv' } });
      summary.textContent = `${plan.created} rows, 0 with errors.`;
      why.textContent = `${chosen.name} is clean: Import creates ${plan.created} users.`;
      importButton.disabled = false;
      replace(
        results,
        h('h2', {}, 'Users the import creates'),
        h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Extension', 'Name', 'Email', 'Tenant', 'Transport'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, plan.users.slice(0, 200).map((u) => h('tr', {}, h('td', {}, String(u.extension)), h('td', { dir: 'auto' }, u.name), h('td', {}, u.email), h('td', {}, u.tenant), h('td', {}, u.transport)))))),
        plan.users.length > 200 ? h('p', { class: 'hint' }, `and ${plan.users.length - 200} more.`) : null,
      );
    } catch (e) {
      if (e.code === 'import_invalid' && Array.isArray(e.body?.error?.errors)) {
        showErrors(e.body.error.errors, rows);
      } else {
        summary.textContent = '';
        alert.show(describe(e));
      }
      why.textContent = 'Import is possible once the file has no errors: fix the rows below and choose the file again.';
    }
  }

  function showErrors(errors, rows) {
    const byRow = new Map();
    for (const err of errors) {
      const key = err.row === null || err.row === undefined ? 'file' : String(err.row);
      if (!byRow.has(key)) byRow.set(key, []);
      byRow.get(key).push(err);
    }
    const bad = [...byRow.keys()].filter((k) => k !== 'file').length;
    summary.textContent = `${rows} rows, ${bad} with errors.`;
    replace(
      results,
      h('h2', {}, 'Rows with errors'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'errors' },
          h('thead', {}, h('tr', {}, ['Row', 'Field', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
          h(
            'tbody',
            {},
            [...byRow.entries()].map(([row, errs]) =>
              h(
                'tr',
                { 'data-row': row, class: 'bad' },
                h('th', { scope: 'row' }, row === 'file' ? 'whole file' : row),
                h('td', {}, errs.map((x) => h('div', {}, x.field ?? '—'))),
                h('td', {}, errs.map((x) => h('div', { dir: 'auto' }, x.message))),
              ),
            ),
          ),
        ),
      ),
    );
  }

  importButton.addEventListener('click', async () => {
    if (!file) return;
    importButton.disabled = true;
    alert.clear();
    try {
      const r = await api('/users/import', { method: 'POST', body: file.text, headers: { 'Content-Type': 'text/csv', 'Idempotency-Key': file.key } });
      status.textContent = `Imported ${r.created} users.`;
      why.textContent = 'Imported. Choose another file to import more.';
      const sheet = ['extension,name,email,tenant,sip_username,sip_password,transport']
        .concat(r.users.map((u) => [u.extension, u.name, u.email, u.tenant, u.sip_username, u.sip_password, u.transport].map(cell).join(',')))
        .join('\r\n');
      const blob = new Blob([`${sheet}\r\n`], { type: 'text/csv' });
      replace(
        results,
        h('h2', {}, 'Imported'),
        h('p', { class: 'once' }, 'Each new user has a SIP password, shown only now: download the sheet and keep it safe.'),
        h('button', { type: 'button', onclick: () => download(blob, 'credentials.csv') }, 'Download credentials'),
      );
      file = null;
    } catch (e) {
      alert.show(describe(e));
      importButton.disabled = false;
    }
  });

  input.addEventListener('change', () => {
    if (input.files && input.files[0]) dryRun(input.files[0]);
  });
  const zone = h('div', { class: 'dropzone' }, h('p', {}, 'Drop a CSV file here, or choose one:'), field('CSV file', input), h('p', { class: 'hint' }, 'Columns: name, email, and optionally extension, devices, transport, tenant.'));
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    const f = ev.dataTransfer?.files?.[0];
    if (f) dryRun(f);
  });

  const exportButton = h('button', {
    type: 'button',
    onclick: async () => {
      exportButton.disabled = true;
      try {
        const resp = await api('/users/export?format=csv', { raw: true, headers: { Accept: 'text/csv' } });
        download(await resp.blob(), 'users.csv');
        status.textContent = 'Exported users.csv.';
      } catch (e) {
        alert.show(describe(e));
      } finally {
        exportButton.disabled = false;
      }
    },
  }, 'Export CSV');

  replace(
    container,
    h('div', { class: 'page-head' }, h('h1', {}, 'Import'), exportButton),
    alert.el,
    zone,
    summary,
    h('div', { class: 'actions' }, importButton),
    why,
    status,
    results,
  );
}
