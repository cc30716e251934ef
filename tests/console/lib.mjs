// What the browser scripts share: Debian's chromium launched headless by playwright-core,
// the portal's API and the test's control server, signing in, axe-core, small waits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const PORTAL = need('PORTAL_URL');
export const ADMIN = need('ADMIN_TOKEN');
export const CONTROL = process.env.CONTROL_URL;
export const SHOTS = process.env.SCREENSHOT_DIR;
export const AXE = path.join(here, 'vendor', 'axe.min.js');
export const TOKEN_KEY = 'pbx-portal.token';
/** The console's pages besides Users: route and heading. */
export const PAGES = [
  ['#/apply', 'Apply'],
  ['#/import', 'Import'],
  ['#/nodes', 'Nodes'],
  ['#/audit', 'Audit log'],
  ['#/tokens', 'Tokens'],
];

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/it/console.rs sets it)`);
  return v;
}

// The flags this machine's chromium needs (no sandbox as root, no GPU, no traffic of its
// own to Google's hosts, which a closed network refuses many at a time). Playwright adds
// --headless and a fresh, empty --user-data-dir of its own.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Debian's chromium; never a browser a tool downloads. `home`: a HOME of the test's own
// (its ~/.pki/nssdb holds what chromium trusts, for the HTTPS run).
export async function launch({ home } = {}) {
  const ownHome = home ?? mkdtempSync(path.join(tmpdir(), 'console-home-'));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: ownHome },
    timeout: 60_000,
  });
  browser.on('disconnected', () => {
    if (!home) rmSync(ownHome, { recursive: true, force: true });
  });
  return browser;
}

// A context with CSP enforced (bypassCSP is only for the axe runs: axe-core is injected as a
// script tag, which the console's `script-src 'self'` rightly refuses).
export async function newContext(browser, opts = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    ...opts,
  });
  context.setDefaultTimeout(10_000);
  return context;
}

export async function api(method, p, { token = ADMIN, body, headers = {} } = {}) {
  const h = { authorization: `Bearer ${token}`, ...headers };
  let payload = body;
  if (body !== undefined && typeof body !== 'string') {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(PORTAL + p, { method, headers: h, body: payload });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: r.status, json, text, headers: r.headers };
}

export async function control(method, p, body) {
  if (!CONTROL) throw new Error('CONTROL_URL is not set');
  const r = await fetch(CONTROL + p, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`control ${method} ${p}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

// Polls `fn` until it returns a truthy value; fails naming `what` after `ms`.
export async function until(what, fn, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`waited ${ms} ms in vain until ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function h1(page, name) {
  return page.getByRole('heading', { level: 1, name, exact: true });
}

// Signs in through the sign-in page as a person does; ends on the users page.
export async function signIn(page, token = ADMIN) {
  await page.goto(`${PORTAL}/#/signin`);
  await h1(page, 'Sign in').waitFor();
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await h1(page, 'Users').waitFor();
}

// Goes to a hash route of the console and waits for its heading.
export async function open(page, route, heading) {
  await page.evaluate((r) => {
    window.location.hash = r;
  }, route);
  await h1(page, heading).waitFor();
}

// axe-core's serious and critical violations on the page as it is now (the page's context
// must have been made with bypassCSP: see newContext).
export async function axeViolations(page) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!has) await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
    }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function screenshot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: false });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
