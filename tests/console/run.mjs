// The console in a real browser (issue 20, item 8): Debian's chromium, headless, driven by
// playwright-core, against a portal with its own Asterisk stand-in started by
// tests/it/console.rs, which also serves CONTROL_URL (a phone registering, a probe fault,
// the database's user count, the generated files, tokens). Run by `cargo test`; by hand:
// see tests/it/console.rs. Locators follow the UI contract: roles, labels, data- attributes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';
import { ADMIN, PAGES, PORTAL, TOKEN_KEY, api, axeViolations, control, h1, launch, newContext, open, screenshot, signIn, until } from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});
// A failed test leaves no tab open behind it (its live streams would load the next test).
const contexts = new Set();
afterEach(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  contexts.clear();
});

// A fresh tab with CSP enforced, and every request URL it made.
async function tab(opts) {
  const context = await newContext(browser, opts);
  contexts.add(context);
  const page = await context.newPage();
  const urls = [];
  context.on('request', (r) => urls.push(r.url()));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, urls, errors };
}

async function userByEmail(email) {
  const r = await api('GET', `/users?q=${encodeURIComponent(email)}`);
  assert.equal(r.status, 200, r.text);
  return r.json.users.find((u) => u.email === email.toLowerCase());
}

async function dbUserCount() {
  return (await control('GET', '/users/count')).count;
}

test('every response carries the strict headers; the CSP refuses an inline script', async () => {
  const r = await fetch(`${PORTAL}/`);
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /default-src 'none'/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');

  const { context, page } = await tab();
  await page.goto(`${PORTAL}/#/signin`);
  await h1(page, 'Sign in').waitFor();
  const outcome = await page.evaluate(
    () =>
      new Promise((resolve) => {
        let violated = null;
        document.addEventListener('securitypolicyviolation', (e) => {
          violated = e.violatedDirective;
        });
        const s = document.createElement('script');
        s.textContent = 'window.__inline = 1';
        document.head.appendChild(s);
        // The violation event is queued as a task: look after it.
        setTimeout(() => resolve({ ran: window.__inline === 1, violated }), 200);
      }),
  );
  assert.equal(outcome.ran, false, 'the inline script ran despite the CSP');
  assert.match(String(outcome.violated), /^script-src/);
  await context.close();
});

test('sign-in: a wrong token is refused; the right one opens the users page, kept in sessionStorage only', async () => {
  const { context, page, urls } = await tab();
  await page.goto(`${PORTAL}/`);
  await until('the empty hash to go to #/signin', async () => new URL(page.url()).hash === '#/signin');
  await h1(page, 'Sign in').waitFor();
  assert.equal(await page.getByLabel('API token').getAttribute('type'), 'password');

  await page.getByLabel('API token').fill('not-a-token-of-this-portal');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);

  await page.getByLabel('API token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await h1(page, 'Users').waitFor();
  assert.equal(new URL(page.url()).hash, '#/users');
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), ADMIN);
  const local = await page.evaluate(() => JSON.stringify({ ...localStorage }));
  assert.ok(!local.includes(ADMIN), 'the token is in localStorage');
  assert.deepEqual(await context.cookies(), [], 'a cookie was set');
  assert.equal(await page.evaluate(() => document.cookie), '');
  await page.getByTestId('whoami').filter({ hasText: 'console-admin' }).waitFor();
  const nav = page.getByRole('navigation', { name: 'Main' });
  for (const link of ['Users', 'Apply', 'Import', 'Nodes', 'Audit', 'Tokens']) {
    await nav.getByRole('link', { name: link, exact: true }).waitFor();
  }
  const leaked = urls.filter((u) => u.includes(ADMIN));
  assert.deepEqual(leaked, [], 'the token was in a URL');

  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await h1(page, 'Sign in').waitFor();
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
  await context.close();
});

test('users: create shows the secret once, edit, rotate, delete', async () => {
  const { context, page, errors } = await tab();
  await signIn(page);
  await page.getByRole('button', { name: 'New user', exact: true }).click();
  let dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('Grace Hopper');
  await dialog.getByLabel('Email', { exact: true }).fill('grace@console.example');
  await dialog.getByRole('button', { name: 'Create', exact: true }).click();

  const secret = page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'SIP credentials' }) });
  await secret.waitFor();
  const password = (await secret.getByTestId('sip-password').textContent()).trim();
  assert.match(password, /^[A-Za-z0-9_-]{24}$/, `the shown password ${password}`);
  await secret.getByRole('button', { name: 'Copy password', exact: true }).waitFor();
  await secret.getByRole('button', { name: 'Close', exact: true }).click();
  await secret.waitFor({ state: 'hidden' });

  const grace = await userByEmail('grace@console.example');
  assert.ok(grace, 'the user was created');
  const ext = String(grace.extension);
  const row = page.locator(`tr[data-user-id="${grace.id}"]`);
  await row.filter({ hasText: 'Grace Hopper' }).waitFor();

  await page.getByRole('button', { name: `Edit ${ext}`, exact: true }).click();
  dialog = page.getByRole('dialog');
  const name = dialog.getByLabel('Name', { exact: true });
  assert.equal(await name.inputValue(), 'Grace Hopper');
  await name.fill('Grace B. Hopper');
  await dialog.getByRole('button', { name: 'Save', exact: true }).click();
  await row.filter({ hasText: 'Grace B. Hopper' }).waitFor();
  assert.equal((await api('GET', `/users/${grace.id}`)).json.name, 'Grace B. Hopper');

  await page.getByRole('button', { name: `Rotate secret ${ext}`, exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Rotate', exact: true }).click();
  await secret.waitFor();
  const rotated = (await secret.getByTestId('sip-password').textContent()).trim();
  assert.match(rotated, /^[A-Za-z0-9_-]{24}$/);
  assert.notEqual(rotated, password, 'the rotated secret is a new one');
  await secret.getByRole('button', { name: 'Close', exact: true }).click();

  await page.getByRole('button', { name: `Delete ${ext}`, exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await api('GET', `/users/${grace.id}`)).status, 404);
  assert.deepEqual(errors, [], 'errors on the page');
  await context.close();
});

test('tenants: a user created in a tenant, the tenant filter; a bound token sees its tenant only', async () => {
  const d = await api('POST', '/users', { body: { name: 'Default Person', email: 'person@default.example' } });
  assert.equal(d.status, 201, d.text);
  const { context, page } = await tab();
  await signIn(page);
  await page.getByRole('button', { name: 'New user', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('Tenant Person');
  await dialog.getByLabel('Email', { exact: true }).fill('person@acme.example');
  await dialog.getByLabel('Tenant', { exact: true }).selectOption('acme');
  await dialog.getByRole('button', { name: 'Create', exact: true }).click();
  const secret = page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'SIP credentials' }) });
  await secret.getByRole('button', { name: 'Close', exact: true }).click();
  const u = await userByEmail('person@acme.example');
  assert.equal(u.tenant, 'acme');
  assert.equal(u.extension, 100, 'the lowest free number of the tenant');

  const tenants = () => page.locator('tr[data-user-id]').evaluateAll((rs) => rs.map((r) => r.dataset.tenant));
  await page.getByLabel('Tenant', { exact: true }).filter({ visible: true }).selectOption('acme');
  await until('only acme rows', async () => {
    const t = await tenants();
    return t.length > 0 && t.every((x) => x === 'acme');
  });
  await page.getByRole('button', { name: 'Edit 100 (acme)', exact: true }).waitFor();
  await page.getByLabel('Tenant', { exact: true }).filter({ visible: true }).selectOption('');
  await until('every tenant again', async () => (await tenants()).some((x) => x === 'default'));

  const { token } = await control('POST', '/token', { name: 'acme-reader', scopes: ['read'], tenant: 'acme' });
  const bound = await context.newPage();
  await signIn(bound, token);
  await bound.getByTestId('whoami').filter({ hasText: 'acme' }).waitFor();
  await bound.locator(`tr[data-user-id="${u.id}"]`).waitFor();
  const seen = await bound.locator('tr[data-user-id]').evaluateAll((rs) => rs.map((r) => r.dataset.tenant));
  assert.deepEqual([...new Set(seen)], ['acme']);
  assert.equal(await bound.getByLabel('Tenant', { exact: true }).filter({ visible: true }).count(), 0, 'a bound token is offered the tenant filter');
  await context.close();
});

test('hostile names, quotes and right-to-left text are shown as text', async () => {
  // The API refuses < > " in names (they would break Asterisk's callerid): these are put
  // straight into the database, as an older version or another tool could have left them.
  const hostile = [
    '<img src=x onerror=window.__pwned=1>',
    `Quote "double" 'single' </td><script>window.__pwned=2</script>`,
    'שלום \u202Eabc',
  ];
  const ids = [];
  for (const [i, name] of hostile.entries()) {
    const r = await api('POST', '/users', { body: { name: `Hostile ${i}`, email: `hostile${i}@console.example` } });
    assert.equal(r.status, 201, r.text);
    await control('POST', '/rename', { id: String(r.json.id), name });
    ids.push(r.json.id);
  }
  // An email the API accepts that is markup too.
  const email = '<svg/onload=window.__pwned=3>@evil.example';
  const r = await api('POST', '/users', { body: { name: "Dana O'Neil", email } });
  assert.equal(r.status, 201, r.text);

  const { context, page } = await tab();
  await signIn(page);
  for (const [i, id] of ids.entries()) {
    const row = page.locator(`tr[data-user-id="${id}"]`);
    await row.waitFor();
    assert.ok((await row.textContent()).includes(hostile[i]), `row of ${JSON.stringify(hostile[i])}: ${await row.textContent()}`);
    assert.equal(await row.locator('img, script, svg:not([aria-hidden])').count(), 0);
  }
  const dana = page.locator(`tr[data-user-id="${r.json.id}"]`);
  assert.ok((await dana.textContent()).includes(email.toLowerCase()));
  assert.equal(await dana.locator('svg[onload]').count(), 0);

  // The search echoes what was typed as text too.
  await page.getByLabel('Search', { exact: true }).fill('<img src=x onerror=window.__pwned=4>');
  await page.waitForTimeout(400);
  // And the edit dialog holds the name as the input's value.
  await page.getByLabel('Search', { exact: true }).fill('');
  const row0 = page.locator(`tr[data-user-id="${ids[0]}"]`);
  await row0.waitFor();
  const ext = (await api('GET', `/users/${ids[0]}`)).json.extension;
  await page.getByRole('button', { name: `Edit ${ext}`, exact: true }).click();
  assert.equal(await page.getByRole('dialog').getByLabel('Name', { exact: true }).inputValue(), hostile[0]);
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'markup in a name ran');
  await context.close();
  // The portal rightly refuses to write such names into Asterisk's files: gone before the
  // applies below.
  for (const id of [...ids, r.json.id]) assert.equal((await api('DELETE', `/users/${id}`)).status, 204);
});

test("a phone registering on the stand-in turns its user's dot green within 1 s", async () => {
  const made = [];
  for (const n of ['Ada Lovelace', 'Alan Turing', 'Edsger Dijkstra']) {
    const email = `${n.split(' ')[0].toLowerCase()}@phones.example`;
    const r = await api('POST', '/users', { body: { name: n, email } });
    assert.equal(r.status, 201, r.text);
    made.push(r.json);
  }
  const applied = await api('POST', '/apply', { body: {} });
  assert.equal(applied.status, 200, applied.text);

  const { context, page } = await tab();
  await signIn(page);
  const dot = (u, state) =>
    page.locator(`tr[data-user-id="${u.id}"] [data-registration${state ? `="${state}"` : ''}]`);
  // Live: every applied user is offline (not unknown) before a phone registers.
  for (const u of made) await dot(u, 'offline').waitFor();

  const [ada, alan] = made;
  const elapsed = [];
  for (const u of [ada, alan]) {
    const t0 = performance.now();
    await control('POST', '/register', { extension: String(u.extension) });
    await dot(u, 'online').waitFor({ timeout: 5_000 });
    elapsed.push(performance.now() - t0);
  }
  console.log(`# dot green after the phone registered: ${elapsed.map((e) => e.toFixed(0)).join(' ms, ')} ms`);
  for (const e of elapsed) assert.ok(e <= 1000, `the dot turned green ${e.toFixed(0)} ms after the phone registered`);
  const label = await dot(ada, 'online').evaluate((el) => `${el.getAttribute('aria-label') ?? ''} ${el.textContent}`);
  assert.match(label, /online/);
  // Every row's dot says what the API says (tenants' users too).
  const all = (await api('GET', '/users?limit=1000')).json.users;
  for (const u of all) {
    const want = u.registration.state;
    await until(`the dot of ${u.extension} (${u.tenant}) to say ${want}, as the API does`, async () =>
      (await dot(u).getAttribute('data-registration')) === want,
    5_000);
  }
  console.log(`# states: ${all.map((u) => `${u.extension}/${u.tenant}=${u.registration.state}`).join(' ')}`);
  await screenshot(page, 'console-users.png');

  const t0 = performance.now();
  await control('POST', '/unregister', { extension: String(alan.extension) });
  await dot(alan, 'offline').waitFor({ timeout: 5_000 });
  console.log(`# dot back to offline after ${(performance.now() - t0).toFixed(0)} ms`);
  await context.close();
});

test('import: every bad row shown with field and message, nothing created; then a clean import; export downloads', async () => {
  const bad = [
    'name,email,extension',
    'Katherine Johnson,katherine@import.example,',
    'No Email,not-an-email,',
    'Bad Extension,bad.ext@import.example,12ab',
    ',noname@import.example,',
    'Dorothy Vaughan,dorothy@import.example,',
  ].join('\n');
  const dry = await api('POST', '/users/import?dry_run=true', { body: bad, headers: { 'content-type': 'text/csv' } });
  assert.equal(dry.status, 422, dry.text);
  const expected = dry.json.error.errors;
  assert.ok(expected.length >= 3, dry.text);
  const before = await dbUserCount();

  const { context, page } = await tab();
  await signIn(page);
  await open(page, '#/import', 'Import');
  await page.getByLabel('CSV file').setInputFiles({ name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
  const rows = [...new Set(expected.map((e) => e.row))];
  for (const e of expected) {
    const tr = page.locator(`tr[data-row="${e.row}"]`);
    await tr.first().waitFor();
    const text = (await tr.allTextContents()).join(' ');
    assert.ok(text.includes(String(e.row)), `row ${e.row} shows its number: ${text}`);
    assert.ok(text.includes(e.field), `row ${e.row} names the field ${e.field}: ${text}`);
    assert.ok(text.includes(e.message), `row ${e.row} shows the message "${e.message}": ${text}`);
  }
  await page.getByText(`5 rows, ${rows.length} with errors`).waitFor();
  const importButton = page.getByRole('button', { name: 'Import', exact: true });
  assert.equal(await importButton.isDisabled(), true, 'Import is enabled with bad rows');
  await screenshot(page, 'console-import-errors.png');
  assert.equal(await dbUserCount(), before, 'a dry run created users');

  const clean = ['name,email', 'Katherine Johnson,katherine@import.example', 'Dorothy Vaughan,dorothy@import.example'].join('\n');
  await page.getByLabel('CSV file').setInputFiles({ name: 'clean.csv', mimeType: 'text/csv', buffer: Buffer.from(clean) });
  await until('Import to be enabled after a clean dry run', () => importButton.isEnabled());
  assert.equal(await dbUserCount(), before, 'the dry run of the clean file created users');
  await importButton.click();
  await page.getByRole('status').filter({ hasText: 'Imported 2 users' }).waitFor();
  assert.equal(await dbUserCount(), before + 2);
  assert.ok(await userByEmail('dorothy@import.example'));

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV', exact: true }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'users.csv');
  const csv = readFileSync(await download.path(), 'utf8');
  const viaApi = await api('GET', '/users/export?format=csv');
  assert.equal(viaApi.status, 200);
  assert.equal(csv, viaApi.text, 'the download is the API\'s CSV export');
  assert.ok(csv.includes('katherine@import.example'), csv.slice(0, 400));
  await context.close();
});

test('apply: the pending changes first; a failing probe shows "Rolled back" and the files are intact', async () => {
  const r = await api('POST', '/users', { body: { name: 'Barbara Liskov', email: 'barbara@apply.example' } });
  assert.equal(r.status, 201, r.text);
  const files = await control('GET', '/files');
  assert.ok(Object.keys(files).length > 0);
  await control('POST', '/fault/probe');

  const { context, page } = await tab();
  await signIn(page);
  await open(page, '#/apply', 'Apply');
  const pending = page.getByRole('region', { name: 'Pending changes' });
  await pending.filter({ hasText: String(r.json.extension) }).waitFor();
  await page.getByRole('button', { name: 'Apply now', exact: true }).click();
  const result = page.getByRole('region', { name: 'Result' });
  await result.locator('[data-node]').filter({ hasText: 'Rolled back' }).waitFor({ timeout: 20_000 });
  const alert = page.getByRole('alert').filter({ hasText: /rolled back/i });
  await alert.waitFor();
  assert.match(await alert.textContent(), /probe/i);
  await screenshot(page, 'console-apply.png');
  assert.deepEqual(await control('GET', '/files'), files, 'the files changed after a rollback');
  await control('POST', '/fault/clear');

  // Without the fault the same change applies, and nothing is pending after.
  await page.getByRole('button', { name: 'Apply now', exact: true }).click();
  await until('a result without a rollback', async () => {
    const t = await result.locator('[data-node]').first().textContent();
    return !t.includes('Rolled back');
  }, 20_000);
  assert.notDeepEqual(await control('GET', '/files'), files);
  await context.close();
});

test('apply: a second apply while one runs is explained (409)', async () => {
  const u = await api('POST', '/users', { body: { name: 'Frances Allen', email: 'frances@apply.example' } });
  assert.equal(u.status, 201, u.text);
  const { page } = await tab();
  await signIn(page);
  await open(page, '#/apply', 'Apply');
  await control('POST', '/fault/stall', { ms: 3000 });
  let running;
  try {
    running = api('POST', '/apply', { body: {} }); // holds the apply lock while AMI stalls
    await new Promise((r) => setTimeout(r, 500));
    await page.getByRole('button', { name: 'Apply now', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: /another apply is running/i }).waitFor();
  } finally {
    await control('POST', '/fault/clear'); // AMI answers at once again: the apply ends soon
    await running;
  }
});

test('a token without apply sees no Apply link and no Apply now button; without admin no Tokens', async () => {
  const { token } = await control('POST', '/token', { name: 'no-apply', scopes: ['read', 'write'] });
  const { context, page } = await tab();
  await signIn(page, token);
  const nav = page.getByRole('navigation', { name: 'Main' });
  await nav.getByRole('link', { name: 'Users', exact: true }).waitFor();
  await nav.getByRole('link', { name: 'Import', exact: true }).waitFor();
  assert.equal(await nav.getByRole('link', { name: 'Apply', exact: true }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Tokens', exact: true }).count(), 0);
  await page.getByTestId('whoami').filter({ hasText: 'no-apply' }).waitFor();
  // Typed by hand: the page may show the pending changes, never the button.
  await page.evaluate(() => {
    window.location.hash = '#/apply';
  });
  // The console either shows the Apply page without its button or leaves the route for
  // one the token may see: wait for one or the other.
  await until('the Apply page or another route', async () =>
    new URL(page.url()).hash !== '#/apply' || (await h1(page, 'Apply').isVisible()));
  // (Not networkidle: the live /events stream never lets the network go idle.)
  await page.waitForTimeout(300);
  assert.equal(await page.getByRole('button', { name: 'Apply now' }).count(), 0);

  // Read-only: no New user either.
  const ro = await control('POST', '/token', { name: 'read-only', scopes: ['read'] });
  const second = await context.newPage();
  await signIn(second, ro.token);
  await second.locator('tr[data-user-id]').first().waitFor();
  assert.equal(await second.getByRole('button', { name: 'New user' }).count(), 0);
  const nav2 = second.getByRole('navigation', { name: 'Main' });
  assert.equal(await nav2.getByRole('link', { name: 'Import', exact: true }).count(), 0);
  await context.close();
});

test('a token revoked while the tab is open sends the tab to sign-in at the next action', async () => {
  const { token } = await control('POST', '/token', { name: 'doomed', scopes: ['read', 'write'] });
  const { context, page } = await tab();
  await signIn(page, token);
  const del = await api('DELETE', '/tokens/doomed');
  assert.equal(del.status, 204, del.text);
  // The next action: opening another page (its request gets 401). The tab may already be
  // on its way to sign-in by then (the live /events stream is refused as well), so the
  // action is a navigation that cannot fail on a page that is going away.
  await page.evaluate(() => {
    window.location.hash = '#/nodes';
  });
  await h1(page, 'Sign in').waitFor();
  assert.equal(new URL(page.url()).hash, '#/signin');
  try {
    await page.getByRole('alert').filter({ hasText: 'signed out' }).waitFor();
  } catch (e) {
    const state = await page.evaluate((k) => ({
      hash: location.hash,
      token: sessionStorage.getItem(k) !== null,
      alerts: [...document.querySelectorAll('[role="alert"]')].map((a) => a.textContent),
    }), TOKEN_KEY);
    throw new Error(`on sign-in without the "signed out" alert: ${JSON.stringify(state)} (${e.message.split('\n')[0]})`);
  }
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
  await context.close();
});

test('tokens: create shows the token once; revoke', async () => {
  const { context, page } = await tab();
  await signIn(page);
  await open(page, '#/tokens', 'Tokens');
  await page.getByLabel('Name', { exact: true }).fill('made-in-browser');
  await page.getByLabel('read', { exact: true }).check();
  await page.getByRole('button', { name: 'Create token', exact: true }).click();
  const shown = page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'New token' }) });
  const token = (await shown.getByTestId('new-token').textContent()).trim();
  assert.ok(token.length >= 20, token);
  const who = await api('GET', '/whoami', { token });
  assert.equal(who.status, 200, who.text);
  assert.equal(who.json.name, 'made-in-browser');
  assert.deepEqual(who.json.scopes, ['read']);
  await shown.getByRole('button', { name: 'Copy token', exact: true }).waitFor();
  await shown.getByRole('button', { name: 'Close', exact: true }).click();
  const row = page.locator('tr[data-token="made-in-browser"]');
  await row.waitFor();
  assert.ok(!(await page.content()).includes(token), 'the token is shown again after its dialog closed');

  await page.getByRole('button', { name: 'Revoke made-in-browser', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke', exact: true }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await api('GET', '/whoami', { token })).status, 401);
  await context.close();
});

test('nodes page shows the node; the audit log filters by actor', async () => {
  const nodes = (await api('GET', '/nodes')).json.nodes;
  assert.ok(nodes.length >= 1);
  const { context, page } = await tab();
  await signIn(page);
  await open(page, '#/nodes', 'Nodes');
  for (const n of nodes) await page.locator(`tr[data-node="${n.name}"]`).waitFor();

  // Two actors in the log: console-admin (its creates and applies) and no-apply's... the
  // bootstrap token (the tenant and the tokens the harness made).
  await open(page, '#/audit', 'Audit log');
  const body = page.locator('table tbody tr');
  await body.first().waitFor();
  await page.getByLabel('Actor', { exact: true }).fill('bootstrap');
  await until('only bootstrap rows', async () => {
    const texts = await body.allTextContents();
    return texts.length > 0 && texts.every((t) => t.includes('bootstrap'));
  });
  await page.getByLabel('Actor', { exact: true }).fill('console-admin');
  await until('only console-admin rows', async () => {
    const texts = await body.allTextContents();
    return texts.length > 0 && texts.every((t) => t.includes('console-admin') && !t.includes('bootstrap'));
  });
  await context.close();
});

// Tab until the focused element's accessible name (label, aria-label or text) is `name`.
async function tabTo(page, name, most = 60) {
  for (let i = 0; i < most; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el) return '';
      const label = el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].textContent) || el.textContent || '';
      return label.trim();
    });
    if (focused === name) return;
  }
  throw new Error(`${most} Tabs never reached "${name}"`);
}

test('keyboard only: sign in, open New user, create a user', async () => {
  const { context, page } = await tab();
  await page.goto(`${PORTAL}/#/signin`);
  await h1(page, 'Sign in').waitFor();
  await tabTo(page, 'API token');
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Enter');
  await h1(page, 'Users').waitFor();
  await tabTo(page, 'New user');
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await tabTo(page, 'Name');
  await page.keyboard.type('Keyboard Only');
  await tabTo(page, 'Email');
  await page.keyboard.type('keys@console.example');
  await tabTo(page, 'Create');
  await page.keyboard.press('Enter');
  const secret = page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'SIP credentials' }) });
  await secret.waitFor();
  await tabTo(page, 'Close');
  await page.keyboard.press('Enter');
  await secret.waitFor({ state: 'hidden' });
  assert.ok(await userByEmail('keys@console.example'), 'the user was created from the keyboard');
  await context.close();
});

test('axe-core: no serious or critical violation on any page', async () => {
  // bypassCSP only here: axe-core is injected as a <script> tag, which the console's CSP
  // (script-src 'self') refuses, as the test above shows. Every other test enforces it.
  const { context, page } = await tab({ bypassCSP: true });
  const found = {};
  await page.goto(`${PORTAL}/#/signin`);
  await h1(page, 'Sign in').waitFor();
  found.signin = await axeViolations(page);
  await signIn(page);
  await page.locator('[data-registration]').first().waitFor();
  found.users = await axeViolations(page);
  await page.getByRole('button', { name: 'New user', exact: true }).click();
  await page.getByRole('dialog').waitFor();
  found['users: New user dialog'] = await axeViolations(page);
  await page.keyboard.press('Escape');
  for (const [route, heading] of PAGES) {
    await open(page, route, heading);
    await page.waitForTimeout(300);
    found[route] = await axeViolations(page);
  }
  const bad = Object.entries(found).filter(([, v]) => v.length);
  if (bad.length) console.log(JSON.stringify(Object.fromEntries(bad), null, 2));
  assert.deepEqual(bad.map(([k, v]) => `${k}: ${v.map((x) => x.id).join(', ')}`), []);
  await context.close();
});
