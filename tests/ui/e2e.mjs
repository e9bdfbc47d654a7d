// End-to-end test of the admin web UI in Debian's headless Chromium, driven by playwright-core
// (no browser download). Run by tests/it/ui.rs against the real binary on loopback:
//   DRIFTLOCK_URL=http://127.0.0.1:PORT ADMIN_TOKEN=... SCREENSHOTS=dir node tests/ui/e2e.mjs
// It signs in, creates an org and a key, changes the quota policy and finds it in the billing
// actions, changes dunning, resets usage, opens a monitor chart with an anomaly marked, checks
// the session cookie, CSRF, labels and the narrow layout, and saves a screenshot of each page.
// Issue 22: a browser EventSource reads the live anomaly feed with a ticket; a dispute beyond
// the share waits in the queue and the operator accepts it from the UI.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.DRIFTLOCK_URL;
const adminToken = process.env.ADMIN_TOKEN;
const shots = process.env.SCREENSHOTS || 'target/ui-screenshots';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(base?.startsWith('http://127.0.0.1:'), 'DRIFTLOCK_URL must be a loopback URL');
assert.ok(adminToken, 'ADMIN_TOKEN is required');
mkdirSync(shots, { recursive: true });

const step = (name) => console.log(`step: ${name}`);
const figures = {};

async function apiAs(key, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/** Every form control has an accessible name, and the page does not scroll sideways. */
async function checkPage(page, name) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => !el.closest('[hidden]'))
    .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unlabelled, [], `${name}: controls without a label`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `${name}: the page scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync'],
});
let failed = false;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  step('the sign-in page loads');
  await page.goto(`${base}/admin/`);
  await page.getByLabel('Admin token').waitFor();
  const timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd };
  });
  figures.sign_in_page = timing;
  await checkPage(page, '01-sign-in');

  step('a wrong token is refused');
  await page.getByLabel('Admin token').fill('dla_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token is not valid.').waitFor();

  step('signing in sets a strict, HttpOnly session cookie');
  await page.getByLabel('Admin token').fill(adminToken);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  const [cookie] = (await context.cookies()).filter((c) => c.name === 'driftlock_session');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie.includes('driftlock_session')), false, 'scripts cannot read the cookie');

  step('a state-changing call without the CSRF token is refused');
  const forged = await page.evaluate(async () => {
    const res = await fetch('/v1/admin/orgs', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'forged' }) });
    return res.status;
  });
  assert.equal(forged, 401);

  step('overview');
  await page.getByText('Detections this month').waitFor();
  await page.locator('#daily-chart canvas').first().waitFor();
  // Time from navigation to the overview's chart drawn, signed in (median of 5 reloads).
  const loads = [];
  for (let i = 0; i < 5; i += 1) {
    const t0 = Date.now();
    await page.reload();
    await page.locator('#daily-chart canvas').first().waitFor();
    loads.push(Date.now() - t0);
  }
  figures.overview_ready_ms_median = loads.sort((a, b) => a - b)[2];
  await checkPage(page, '02-overview');

  step('create an organization');
  await page.getByRole('link', { name: 'Organizations' }).click();
  await page.getByRole('heading', { name: 'Organizations', exact: true }).waitFor();
  await page.locator('#create-org').getByLabel('Name').fill('E2E Org');
  await page.locator('#create-org').getByLabel('Billing email').fill('ops@e2e.example');
  await page.locator('#create-org').getByLabel('Plan').selectOption('standard');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByRole('heading', { name: 'E2E Org' }).waitFor();
  const orgId = (await page.locator('main p.muted code').first().textContent()).trim();
  assert.match(orgId, /^org_/);

  step('create a key: shown once');
  await page.getByLabel('Key name').fill('e2e key');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.locator('#new-key-secret').textContent()).trim();
  assert.match(secret, /^dl_[a-z0-9]{12}_[A-Za-z0-9]{40}$/);
  assert.equal((await apiAs(secret, 'GET', '/v1/org')).id, orgId, 'the new key works');

  step('change the quota policy and see it in the billing actions');
  const policy = page.locator('#quota-policy');
  await policy.getByLabel('When the included detections run out').selectOption('allow_overage');
  await policy.getByLabel('Cap (percent of included)').fill('150');
  await policy.getByRole('button', { name: 'Save quota policy' }).click();
  await page.locator('tr.billing-action', { hasText: 'quota_policy_changed' }).first().waitFor();
  const policyRow = await page.locator('tr.billing-action', { hasText: 'quota_policy_changed' }).first().textContent();
  assert.match(policyRow, /allow_overage/);
  assert.match(policyRow, /150/);

  step('change the dunning state with a note');
  await page.locator('#dunning').getByLabel('Set dunning state').selectOption('grace');
  await page.locator('#dunning').getByLabel('Note (kept in the billing actions)').fill('customer asked for time');
  await page.getByRole('button', { name: 'Change dunning state' }).click();
  await page.locator('tr.billing-action', { hasText: 'customer asked for time' }).first().waitFor();

  step('reset usage, marked as a test operation');
  await page.locator('#reset-usage').getByLabel('Reason').fill('e2e check');
  await page.getByRole('button', { name: 'Reset usage (test operation)' }).click();
  await page.locator('tr.billing-action', { hasText: 'usage_reset' }).locator('.badge.test').waitFor();

  step('feed a monitor through the API so it has an anomaly');
  const monitor = await apiAs(secret, 'POST', '/v1/monitors', { name: 'checkout latency' });
  const points = Array.from({ length: 600 }, (_, i) => ({
    timestamp: 1_700_000_000 + 300 * i,
    value: i === 500 ? 5000 : 50 + 10 * Math.sin((i * 2 * Math.PI) / 288) + ((i * 7919) % 13) * 0.1,
  }));
  const ingested = await apiAs(secret, 'POST', `/v1/monitors/${monitor.id}/points`, { points });
  assert.ok(ingested.anomalies >= 1 || ingested.results?.some((r) => r.anomaly), `an anomaly was detected: ${JSON.stringify(ingested).slice(0, 200)}`);
  await page.reload();
  await page.getByRole('heading', { name: 'E2E Org' }).waitFor();
  await checkPage(page, '04-organization');

  step('the monitor chart marks the anomaly and explains it');
  await page.getByRole('link', { name: 'checkout latency' }).click();
  await page.locator('#monitor-chart canvas').first().waitFor();
  const marked = Number(await page.locator('#monitor-chart').getAttribute('data-anomalies'));
  assert.ok(marked >= 1, `anomalies marked on the chart: ${marked}`);
  const firstAnomaly = page.locator('tr.anomaly-row button').first();
  await firstAnomaly.focus();
  await page.keyboard.press('Enter');
  await page.locator('#explanation').waitFor();
  const why = await page.locator('#explanation').textContent();
  assert.match(why, /p-value/);
  assert.match(why, /Expected range/);
  assert.match(why, /Anomaly\s*ma_\d+/);
  assert.match(why, /Status\s*open/);
  await checkPage(page, '05-monitor');

  step('a browser EventSource receives the live anomaly feed (with a ticket)');
  const live = await page.evaluate(async (key) => {
    const res = await fetch('/v1/anomalies/live/tickets', { method: 'POST', headers: { Authorization: `Bearer ${key}` } });
    const { ticket } = await res.json();
    return new Promise((resolve, reject) => {
      const seen = { anomalies: [], heartbeats: 0 };
      const source = new EventSource(`/v1/anomalies/live?ticket=${encodeURIComponent(ticket)}&after=0&heartbeat_seconds=1`);
      const timer = setTimeout(() => { source.close(); reject(new Error(`live feed: ${JSON.stringify(seen)}`)); }, 15000);
      source.addEventListener('anomaly', (e) => seen.anomalies.push({ id: e.lastEventId, data: JSON.parse(e.data) }));
      source.addEventListener('heartbeat', () => {
        seen.heartbeats += 1;
        if (seen.anomalies.length) { clearTimeout(timer); source.close(); resolve(seen); }
      });
    });
  }, secret);
  assert.ok(live.anomalies.length >= 1, 'the stored anomaly came first');
  assert.equal(String(live.anomalies[0].data.anomaly.feed_id), live.anomalies[0].id, 'the event id is the feed id');
  assert.equal(live.anomalies[0].data.anomaly.source, 'monitor');
  const anomalyId = live.anomalies[0].data.anomaly.id;

  step('a dispute beyond the share waits in the queue; the operator accepts it');
  await apiAs(adminToken, 'PUT', '/v1/admin/plans/standard',
    { name: 'Standard', monthly_price_cents: 4900, included_detections: 250000, overage_millicents: 350, dispute_share_percent: 0 });
  const given = await apiAs(secret, 'POST', `/v1/monitors/${monitor.id}/anomalies/${anomalyId}/feedback`,
    { verdict: 'false_positive', note: 'planned load test' });
  assert.equal(given.dispute.status, 'awaiting_operator');
  const usageBefore = await apiAs(secret, 'GET', '/v1/usage');
  await page.goto(`${base}/admin/#/orgs/${orgId}`);
  await page.getByRole('heading', { name: 'E2E Org' }).waitFor();
  const figuresText = await page.locator('#dispute-figures').textContent();
  assert.match(figuresText, /Awaiting an operator\s*1/);
  await page.getByRole('link', { name: 'Decide the 1 waiting' }).click();
  await page.getByRole('heading', { name: 'Disputes' }).waitFor();
  const row = page.locator('tr.dispute-row', { hasText: anomalyId });
  await row.waitFor();
  assert.match(await row.textContent(), /planned load test/);
  await checkPage(page, '09-disputes');
  await row.getByLabel(`Reason for dispute ${given.dispute.id}`).fill('confirmed with the customer');
  await row.getByRole('button', { name: `Accept dispute ${given.dispute.id}` }).click();
  await page.getByText(`Dispute ${given.dispute.id} accepted`).waitFor();
  await page.getByText('No disputes here.').waitFor();
  const usageAfter = await apiAs(secret, 'GET', '/v1/usage');
  assert.equal(usageAfter.total_calls, usageBefore.total_calls - 1, 'exactly one detection left the usage');
  assert.equal(usageAfter.disputed_detections, 1);
  await page.locator('#dispute-filter').getByLabel('Show').selectOption('accepted');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('tr.dispute-row', { hasText: 'confirmed with the customer' }).waitFor();

  step('the monitor page shows the feedback and the dispute on the anomaly');
  await page.goto(`${base}/admin/#/orgs/${orgId}/monitors/${monitor.id}`);
  await page.locator(`tr.anomaly-row button[data-seq="${anomalyId.replace('ma_', '')}"]`).click();
  const feedbackText = await page.locator('#explanation').textContent();
  assert.match(feedbackText, /Feedback\s*false_positive/);
  assert.match(feedbackText, /accepted/);

  step('the organization list finds the org by search');
  await page.goto(`${base}/admin/#/orgs`);
  await page.getByLabel('Search organizations').fill('e2e');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: 'E2E Org' }).waitFor();
  await checkPage(page, '03-organizations');

  step('billing');
  await page.getByRole('link', { name: 'Billing' }).click();
  await page.getByRole('heading', { name: 'Stripe events received' }).waitFor();
  await page.getByRole('heading', { name: 'Email outbox' }).waitFor();
  await checkPage(page, '06-billing');

  step('keyboard: the skip link comes first and reaches the content');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');

  step('narrow screens');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByText('Detections this month').waitFor();
  await checkPage(page, '07-overview-phone');
  await page.goto(`${base}/admin/#/orgs/${orgId}`);
  await page.getByRole('heading', { name: 'E2E Org' }).waitFor();
  await checkPage(page, '08-organization-phone');

  step('sign out ends the session');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').waitFor();
  const after = await page.evaluate(async () => (await fetch('/v1/admin/session')).status);
  assert.equal(after, 401);

  assert.deepEqual(consoleErrors.filter((e) => !e.includes('401')), [], 'no script errors');
  console.log(`figures: ${JSON.stringify(figures)}`);
} catch (e) {
  failed = true;
  console.error(e);
  if (page) {
    await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
    console.error(`status line: ${await page.locator('#status').textContent().catch(() => '?')}`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
