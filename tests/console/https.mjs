// The console over HTTPS (issue 20, item 10) with the CA of scripts/test-ca.sh trusted as a
// person trusts it: imported into the browser's certificate store (an NSS database in the
// HOME chromium runs with), not by telling the browser to ignore certificate errors.
// Run by tests/it/console.rs (console_over_https_with_the_test_ca_trusted).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ADMIN, PORTAL, api, h1, launch, newContext, open, signIn } from './lib.mjs';

const CA = process.env.CA_CERT;
let home;
before(() => {
  assert.ok(PORTAL.startsWith('https://'), PORTAL);
  assert.ok(CA, 'CA_CERT is not set');
  home = mkdtempSync(path.join(tmpdir(), 'console-https-home-'));
  const db = `sql:${path.join(home, '.pki', 'nssdb')}`;
  mkdirSync(path.join(home, '.pki', 'nssdb'), { recursive: true });
  execFileSync('certutil', ['-d', db, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', db, '-A', '-t', 'C,,', '-n', 'pbx-portal test CA', '-i', CA]);
});
after(() => rmSync(home, { recursive: true, force: true }));

test('over HTTPS with the test CA trusted: no certificate error, sign-in, pages load', async () => {
  const browser = await launch({ home });
  try {
    const context = await newContext(browser); // no ignoreHTTPSErrors
    const page = await context.newPage();
    const r = await page.goto(`${PORTAL}/#/signin`);
    assert.equal(r.status(), 200);
    const tls = await r.securityDetails();
    assert.match(tls.issuer, /pbx-portal HTTPS test CA/);
    assert.match(tls.protocol, /TLS 1\.[23]/);
    assert.match((await r.allHeaders())['strict-transport-security'] ?? '', /max-age=\d+/);
    await signIn(page, ADMIN);
    await open(page, '#/nodes', 'Nodes');
    await page.locator('tr[data-node]').first().waitFor();
    assert.equal(await page.evaluate(() => window.isSecureContext && location.protocol), 'https:');
    await context.close();
  } finally {
    await browser.close();
  }
});

test('the same browser without the CA refuses the certificate (the trust is what made it work)', async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await assert.rejects(page.goto(`${PORTAL}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await browser.close();
  }
  // And the API over the same TLS, from this script (NODE_EXTRA_CA_CERTS).
  assert.equal((await api('GET', '/whoami')).status, 200);
});
