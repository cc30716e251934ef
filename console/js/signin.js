// Sign-in: a token checked against GET /whoami, then kept in this tab's sessionStorage
// only (never a cookie, never the URL).

import { api, session } from './api.js';
import { h, replace, field, alertArea } from './dom.js';

export function signinPage(container, { notice, onSignedIn }) {
  const alert = alertArea();
  const input = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    required: true,
    spellcheck: 'false',
  });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin card' },
    h('h1', {}, 'Sign in'),
    alert.el,
    field('API token', input, 'A token made with `pbx-portal token create` or the Tokens page.'),
    button,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      alert.show('Enter a token: an empty token is not accepted.');
      input.focus();
      return;
    }
    button.disabled = true;
    alert.clear();
    try {
      const me = await api('/whoami', { token });
      session.set(token);
      onSignedIn(me);
    } catch (e) {
      alert.show(
        e.status === 401
          ? 'This token was not accepted: it is wrong, expired or revoked.'
          : `Could not sign in: ${e.message}`,
      );
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(container, form);
  if (notice) alert.show(notice);
  input.focus();
}
