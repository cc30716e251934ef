// Modal dialogs on the native <dialog> element: showModal() makes the rest of the page
// inert and keeps keyboard focus inside; Escape closes; focus goes back to the control
// that opened it. Each dialog is removed from the page when it closes.

import { h, uid, alertArea } from './dom.js';

/**
 * Opens a dialog titled `title` holding `body` (nodes) and `actions` (buttons); returns
 * {dialog, close, alert}. onClose runs once, after it closed.
 */
export function openDialog({ title, body = [], actions = [], onClose = () => {}, wide = false }) {
  const opener = document.activeElement;
  const titleId = uid('dlg');
  const alert = alertArea();
  const dialog = h(
    'dialog',
    { 'aria-labelledby': titleId, class: wide ? 'wide' : null },
    h('h2', { id: titleId }, title),
    alert.el,
    h('div', { class: 'dialog-body' }, body),
    h('div', { class: 'actions' }, actions),
  );
  let closed = false;
  dialog.addEventListener('close', () => {
    if (closed) return;
    closed = true;
    dialog.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    else document.getElementById('main')?.focus();
    onClose();
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, alert, close: () => dialog.close() };
}

/** Asks a yes/no question; resolves true when `confirmLabel` was pressed. */
export function confirmDialog({ title, message, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h('button', { type: 'button', onclick: () => d.close() }, 'Cancel');
    const ok = h(
      'button',
      {
        type: 'button',
        class: danger ? 'danger' : 'primary',
        onclick: () => {
          answer = true;
          d.close();
        },
      },
      confirmLabel,
    );
    const d = openDialog({
      title,
      body: [h('p', {}, message)],
      actions: [cancel, ok],
      onClose: () => resolve(answer),
    });
    cancel.focus();
  });
}

/** Copies text; falls back to selecting it and execCommand where the clipboard API is not allowed. */
export async function copyText(text, fallbackEl) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the selection
  }
  if (fallbackEl) {
    const range = document.createRange();
    range.selectNodeContents(fallbackEl);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
  return false;
}

/** A value shown once with a copy button and a status line saying whether it was copied. */
export function copyButton(label, text, valueEl) {
  const status = h('span', { class: 'copied', role: 'status' });
  const button = h(
    'button',
    {
      type: 'button',
      onclick: async () => {
        const ok = await copyText(text, valueEl);
        status.textContent = ok ? 'Copied.' : 'Select the text and copy it by hand.';
      },
    },
    label,
  );
  return [button, status];
}

/** What a transport name suggests the phone should use. */
function protocol(transport) {
  const t = (transport || '').toLowerCase();
  if (t.includes('tls')) return 'TLS';
  if (t.includes('tcp')) return 'TCP';
  if (t.includes('ws')) return 'WebSocket';
  if (t.includes('udp')) return 'UDP';
  return null;
}

/** The SIP credentials of a user, shown once: what to type into a phone. */
export function secretDialog({ username, password, transport, onClose }) {
  const server = window.location.hostname;
  const passwordEl = h('code', { 'data-testid': 'sip-password' }, password);
  const proto = protocol(transport);
  const rows = [
    ['Server', h('code', {}, server)],
    ['Username', h('code', {}, username)],
    ['Password', passwordEl],
    ['Transport', h('span', {}, proto ? `${proto} (${transport})` : transport)],
  ];
  const close = h('button', { type: 'button', class: 'primary', onclick: () => d.close() }, 'Close');
  const d = openDialog({
    title: 'SIP credentials',
    body: [
      h('p', { class: 'once' }, 'The password is shown only once: copy it now or type it into the phone.'),
      h('dl', { class: 'creds' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      h('p', { class: 'hint' }, 'The new secret works after the next apply.'),
    ],
    actions: [...copyButton('Copy password', password, passwordEl), close],
    onClose,
  });
  close.focus();
  return d;
}
