// The console's performance benchmark (issue 20, Performance), run by
// scripts/console-bench.sh against a release server on a throwaway database:
// 1. the users page with 10,000 users: time from navigation to its first page painted
//    (performance.now() of the frame after the first user row is in the DOM; a fresh
//    browser context each time, so nothing is cached, and the same again warm), median of 20;
// 2. filter as you type: one keystroke in Search narrowing ten users to one — from the
//    keydown to the filtered list painted (the limit), with the keydown to the next frame
//    (typing never waits) and the search request to the list painted beside it; median
//    of 20;
// 3. the whole console compressed: every asset the console loads on every page, each
//    gzipped (level 9), summed.
// Each figure is printed next to its limit; exit 1 when one is over.
import { gzipSync } from 'node:zlib';
import { ADMIN, PAGES, PORTAL, TOKEN_KEY, api, h1, launch, median, newContext } from './lib.mjs';

const USERS = 10_000;
const RUNS = 20;
const LIMITS = { firstPage: 300, perKey: 50, bytes: 150_000 };

async function seed() {
  const have = (await api('GET', '/users?limit=1')).json.total;
  for (let i = have; i < USERS; i += 5000) {
    const users = [];
    for (let k = i; k < Math.min(USERS, i + 5000); k++) {
      users.push({ name: `bench user ${String(k).padStart(5, '0')}`, email: `bench${k}@bench.example` });
    }
    const r = await api('POST', '/users/import', { body: { users } });
    if (r.status !== 201) throw new Error(`seeding: ${r.status} ${r.text.slice(0, 300)}`);
  }
  const total = (await api('GET', '/users?limit=1')).json.total;
  if (total !== USERS) throw new Error(`${total} users, not ${USERS}`);
}

// Signed in by the tab's sessionStorage, and the first user row's paint time recorded.
async function benchContext(browser) {
  const context = await newContext(browser);
  await context.addInitScript(
    ({ key, token }) => {
      sessionStorage.setItem(key, token);
      window.__firstRow = null;
      const obs = new MutationObserver(() => {
        if (window.__firstRow === null && document.querySelector('tr[data-user-id]')) {
          window.__firstRow = -1;
          obs.disconnect();
          requestAnimationFrame(() => {
            window.__firstRow = performance.now();
          });
        }
      });
      obs.observe(document, { childList: true, subtree: true });
    },
    { key: TOKEN_KEY, token: ADMIN },
  );
  return context;
}

async function firstPage(context) {
  const page = await context.newPage();
  await page.goto(`${PORTAL}/#/users`);
  await page.waitForFunction(() => window.__firstRow > 0, null, { polling: 20, timeout: 10_000 });
  const t = await page.evaluate(() => window.__firstRow);
  // Where the time went: every request of the page until then, relative to navigation.
  lastTimeline = await page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .concat(performance.getEntriesByType('navigation'))
      .map((e) => ({ name: e.name.replace(location.origin, ''), start: e.startTime, end: e.responseEnd }))
      .sort((a, b) => a.start - b.start),
  );
  await page.close();
  return t;
}
let lastTimeline = [];

async function filterAsYouType(page, pageSize) {
  const search = page.getByLabel('Search', { exact: true });
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const k = (137 + i * 491) % USERS;
    const full = `bench user ${String(k).padStart(5, '0')}`;
    const prefix = full.slice(0, -1);
    const want = (await api('GET', `/users?q=${encodeURIComponent(full)}`)).json.users;
    if (want.length !== 1) throw new Error(`${full}: ${want.length} users`);
    const before = Math.min(pageSize, (await api('GET', `/users?q=${encodeURIComponent(prefix)}&limit=1`)).json.total);
    await search.fill(prefix);
    await page.waitForFunction(
      ({ n, prefix }) => {
        const rows = [...document.querySelectorAll('tr[data-user-id]')];
        return rows.length === n && rows.every((r) => r.textContent.includes(prefix));
      },
      { n: before, prefix },
      { polling: 20 },
    );
    await page.waitForTimeout(250); // no debounced request of the prefix still on its way
    await search.evaluate(
      (input, { id, digits }) => {
        performance.clearResourceTimings();
        const t = {};
        window.__t = t;
        input.addEventListener(
          'keydown',
          () => {
            t.key = performance.now();
            requestAnimationFrame(() => {
              t.echo = performance.now();
            });
          },
          { once: true, capture: true },
        );
        const obs = new MutationObserver(() => {
          const rows = document.querySelectorAll('tr[data-user-id]');
          if (rows.length === 1 && rows[0].dataset.userId === String(id)) {
            obs.disconnect();
            requestAnimationFrame(() => {
              t.shown = performance.now();
              const req = performance
                .getEntriesByType('resource')
                .filter((e) => e.name.includes('q=') && e.name.includes(digits));
              t.request = req.length ? req[req.length - 1].startTime : null;
            });
          }
        });
        obs.observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true });
      },
      { id: want[0].id, digits: full.slice(-5) },
    );
    await search.press(full.slice(-1));
    await page.waitForFunction(() => window.__t.shown !== undefined, null, { polling: 20, timeout: 10_000 });
    const t = await page.evaluate(() => window.__t);
    samples.push({
      echo: t.echo - t.key,
      afterRequest: t.request === null ? NaN : t.shown - t.request,
      total: t.shown - t.key,
    });
  }
  return samples;
}

// Every same-origin response that is not the API: the console's files, gzipped one by one.
async function consoleSize(context) {
  const page = await context.newPage();
  const seen = new Set([`${PORTAL}/`]);
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.origin === new URL(PORTAL).origin && u.pathname.startsWith('/assets/')) seen.add(`${u.origin}${u.pathname}`);
  });
  await page.goto(`${PORTAL}/#/users`);
  await h1(page, 'Users').waitFor();
  for (const [route, heading] of PAGES) {
    await page.evaluate((r) => {
      window.location.hash = r;
    }, route);
    await h1(page, heading).waitFor();
  }
  await page.close();
  // And whatever an asset names that no page loaded (a module loaded only on demand).
  const files = [];
  const queue = [...seen];
  while (queue.length) {
    const url = queue.shift();
    const r = await fetch(url);
    if (r.status !== 200) throw new Error(`${url}: ${r.status}`);
    const buf = Buffer.from(await r.arrayBuffer());
    files.push({ path: new URL(url).pathname, raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length });
    for (const m of buf.toString('latin1').matchAll(/(?:\/assets\/|\.\/)([\w.-]+\.[0-9a-f]{16}\.\w+)/g)) {
      const next = `${new URL(PORTAL).origin}/assets/${m[1]}`;
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return files;
}

const fmt = (ms) => `${ms.toFixed(1)} ms`;
let over = false;
function line(what, value, limit, show) {
  const ok = value <= limit;
  if (!ok) over = true;
  console.log(`${ok ? 'ok  ' : 'OVER'} ${what.padEnd(58)} ${show(value).padStart(10)}   limit ${show(limit)}`);
}

await seed();
console.log(`${USERS} users; chromium headless; median of ${RUNS}`);
const browser = await launch();
try {
  const cold = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await benchContext(browser);
    cold.push(await firstPage(context));
    await context.close();
  }
  const context = await benchContext(browser);
  await firstPage(context); // fills the cache
  const warm = [];
  for (let i = 0; i < RUNS; i++) warm.push(await firstPage(context));

  const page = await context.newPage();
  await page.goto(`${PORTAL}/#/users`);
  await page.waitForFunction(() => window.__firstRow > 0);
  const pageSize = await page.locator('tr[data-user-id]').count();
  const typed = await filterAsYouType(page, pageSize);
  await page.close();
  const files = await consoleSize(context);
  await context.close();

  line('users page, navigation to first page painted (cold cache)', median(cold), LIMITS.firstPage, fmt);
  console.log(`     (warm cache: ${fmt(median(warm))}; ${pageSize} rows a page; cold min ${fmt(Math.min(...cold))} max ${fmt(Math.max(...cold))})`);
  console.log('     the last navigation, request by request (start → end, ms after navigation):');
  for (const e of lastTimeline) console.log(`       ${e.start.toFixed(1).padStart(7)} → ${e.end.toFixed(1).padStart(7)}  ${e.name.slice(0, 90)}`);
  line('filter: keystroke to filtered list painted', median(typed.map((s) => s.total)), LIMITS.perKey, fmt);
  console.log(`     (keystroke to next frame ${fmt(median(typed.map((s) => s.echo)))}; search request to list painted ${fmt(median(typed.map((s) => s.afterRequest)))})`);
  const total = files.reduce((a, f) => a + f.gzip, 0);
  for (const f of files) console.log(`     ${f.path.padEnd(48)} ${String(f.raw).padStart(8)} B raw ${String(f.gzip).padStart(7)} B gzip`);
  line(`console compressed (${files.length} files, gzip -9 each)`, total, LIMITS.bytes, (b) => `${(b / 1000).toFixed(1)} KB`);
} finally {
  await browser.close();
}
process.exit(over ? 1 : 0);
