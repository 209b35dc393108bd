// Drives headless Chromium (Debian's) through the console of a running query API, with playwright-core.
// Run by tests/tests/console.rs, which produced the records to Kafka and started the API:
//   CONSOLE_BASE=http://127.0.0.1:PORT CONSOLE_CASE='{...}' ARTIFACTS=DIR node console-check.mjs
// Prints one line per check, "ok - ..." or "not ok - ...: why", and exits 1 when any failed. Screenshots go to
// ARTIFACTS.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.CONSOLE_BASE;
const cases = JSON.parse(process.env.CONSOLE_CASE || '{}');
const artifacts = process.env.ARTIFACTS || join(tmpdir(), 'console-artifacts');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
  ],
});

let failed = 0;
// playwright-core gives each launch a fresh, temporary profile (the --user-data-dir BRIEF §9 asks for).
// Everything the page reports as an error (a CSP refusal, an exception) fails the check it happened in.
async function check(name, body) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // A 4xx the check asked for is logged as a failed load; a refused script or style is not that.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console error: ${msg.text()}`);
  });
  page.on('dialog', async (dialog) => {
    problems.push(`a dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
  try {
    await body(page);
    if (problems.length) throw new Error(problems.join('; '));
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok - ${name}: ${err.message.split('\n')[0]}`);
    await page.screenshot({ path: join(artifacts, `failed-${name.replace(/\W+/g, '-')}.png`), fullPage: true }).catch(() => {});
  } finally {
    await context.close();
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function same(actual, wanted, what) {
  const a = JSON.stringify(actual);
  const w = JSON.stringify(wanted);
  expect(a === w, `${what}: got ${a}, wanted ${w}`);
}

const at = (path) => `${base}${path}`;
const enc = encodeURIComponent;
const cellTexts = (page, column) => page.$$eval(`table.list tbody td[data-label="${column}"]`, (tds) => tds.map((td) => td.textContent.trim()));

await check('the search box reaches an order by keyboard alone', async (page) => {
  await page.goto(at('/console/'));
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  same(focused, 'q', 'the search box has the focus on arrival');
  await page.keyboard.type(cases.order);
  await Promise.all([page.waitForURL(`**/console/orders/${enc(cases.order)}`), page.keyboard.press('Enter')]);
  await page.waitForSelector('table.list tbody tr');
  same(await cellTexts(page, 'Event type'), cases.order_types, 'the order history');
  same(await page.locator('h1').textContent(), `Order${cases.order}`, 'the heading');
});

await check('a value that is several kinds lists each, and the keyboard opens one', async (page) => {
  await page.goto(at(`/console/?q=${enc(cases.shared)}`));
  await page.waitForSelector('.results section');
  const headings = await page.$$eval('.results h2', (hs) => hs.map((h) => h.textContent));
  expect(headings.some((h) => h.startsWith(`Order ${cases.shared}`)), `no order section in ${headings}`);
  expect(headings.some((h) => h.startsWith(`Customer ${cases.shared}`)), `no customer section in ${headings}`);
  // Tab from the heading until the first "Open the history" link has the focus, then Enter.
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press('Tab');
    const text = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    if (text === 'Open the history') break;
  }
  const label = await page.evaluate(() => document.activeElement.textContent);
  same(label, 'Open the history', 'the focused link');
  await Promise.all([page.waitForURL(`**/console/orders/${enc(cases.shared)}`), page.keyboard.press('Enter')]);
  await page.waitForSelector('table.list tbody tr');
});

await check('a flow is drawn with a lane per service and every step in its lane', async (page) => {
  await page.goto(at(`/console/correlations/${enc(cases.correlation)}`));
  await page.waitForSelector('.lanes .step');
  const lanes = await page.$$eval('.lane-head[data-lane]', (hs) => hs.map((h) => h.textContent));
  same(lanes, cases.services, 'the lanes');
  const steps = await page.$$eval('.lanes .step', (cards) => cards.map((card) => ({
    lane: card.dataset.lane,
    type: card.querySelector('a').textContent,
    href: card.querySelector('a').getAttribute('href'),
    column: getComputedStyle(card).gridColumnStart,
  })));
  same(steps.map((s) => s.type), cases.order_types, 'the steps in event-time order');
  same(steps.map((s) => s.lane), cases.services, 'each step in its service');
  same(steps.map((s) => s.column), ['2', '3', '4', '5'], 'each step in its lane column');
  expect(steps.every((s) => s.href.startsWith('/console/records/')), 'every step links to its record');
  const gaps = await page.$$eval('.lanes .at .gap', (gs) => gs.map((g) => g.textContent));
  same(gaps[0], 'start', 'the first step');
  expect(gaps.slice(1).every((g) => /^\+\d/.test(g)), `gaps: ${gaps}`);
  await page.screenshot({ path: join(artifacts, 'timeline.png') });
  // The README's picture: the same page, small.
  await page.setViewportSize({ width: 1000, height: 540 });
  await page.screenshot({ path: join(artifacts, 'console-small.png') });
  // A step's link opens its record.
  await Promise.all([page.waitForURL('**/console/records/**'), page.click('.lanes .step a')]);
  await page.waitForSelector('dl.fields');
});

await check('a flow with a warned step flags it', async (page) => {
  await page.goto(at(`/console/correlations/${enc(cases.warned_correlation)}`));
  await page.waitForSelector('.lanes .step');
  const warned = await page.$$eval('.lanes .step.warned .warn', (ws) => ws.map((w) => w.textContent));
  expect(warned.length === 1 && warned[0].startsWith('⚠'), `warned steps: ${warned}`);
});

await check('load more pages through a long history', async (page) => {
  await page.goto(at(`/console/customers/${enc(cases.many)}`));
  await page.waitForSelector('table.list tbody tr');
  same((await cellTexts(page, 'Record')).length, 50, 'the first page');
  await page.click('button.more');
  await page.waitForFunction(() => document.querySelectorAll('table.list tbody tr').length > 50);
  const records = await cellTexts(page, 'Record');
  same(records.length, cases.many_count, 'after load more');
  same(new Set(records).size, records.length, 'no record twice');
  same(await page.locator('button.more').count(), 0, 'the button once everything is shown');
  // Newest first, through the filter form.
  await page.selectOption('select[name="order"]', 'desc');
  await Promise.all([page.waitForURL('**order=desc'), page.click('form.filters button')]);
  await page.waitForSelector('table.list tbody tr');
  const times = await cellTexts(page, 'Event time');
  same(times, [...times].sort().reverse(), 'newest first');
});

await check('a record shows every field, header and its JSON payload with exact numbers', async (page) => {
  await page.goto(at(`/console/records/${enc(cases.json_record)}`));
  await page.waitForSelector('[data-payload="json"]');
  const tree = await page.locator('[data-payload="json"]').textContent();
  expect(tree.includes(cases.big_number), `the number ${cases.big_number} is not shown exactly`);
  expect(tree.includes(cases.huge_number), 'the 500-digit number is not shown exactly');
  const fields = await page.locator('dl.fields').textContent();
  expect(fields.includes(cases.json_record.split(':')[0]), 'the topic');
  const headers = await page.$$eval('table.list td[data-label="Name"]', (tds) => tds.map((td) => td.textContent));
  expect(headers.includes('trace'), `headers: ${headers}`);
  // Collapsing the top level hides its members.
  await page.click('[data-payload="json"] summary');
  same(await page.locator('[data-payload="json"] details').first().evaluate((d) => d.open), false, 'collapsed');
  const href = await page.locator('a.button-link').getAttribute('href');
  same(href, `/notifications/${enc(cases.json_record)}/payload`, 'the download link');
  const download = await page.request.get(at(href));
  same(download.status(), 200, 'the download');
  // With a pasted token (an API behind a JWT authorizer) the bytes are fetched with it and saved.
  await page.click('details.token summary');
  await page.fill('#token', 'a-test-token');
  await Promise.all([page.waitForNavigation(), page.press('#token', 'Enter')]);
  await page.waitForSelector('[data-payload="json"]');
  const [saved] = await Promise.all([page.waitForEvent('download'), page.click('a.button-link')]);
  same(saved.suggestedFilename(), `${cases.json_record.replace(/[^A-Za-z0-9.-]/g, '_')}.bin`, 'the saved file');
});

await check('text is shown as text, bytes as a hex dump, a tombstone as one', async (page) => {
  await page.goto(at(`/console/records/${enc(cases.text_record)}`));
  same(await page.locator('[data-payload="text"]').textContent(), cases.text, 'the text payload');
  await page.goto(at(`/console/records/${enc(cases.binary_record)}`));
  const dump = await page.locator('[data-payload="hex"]').textContent();
  expect(dump.startsWith('00000000  de ad be ef ff'), `the hex dump: ${dump}`);
  await page.goto(at(`/console/records/${enc(cases.tombstone_record)}`));
  await page.waitForSelector('[data-payload="none"]');
  same(await page.locator('a.button-link').count(), 0, 'no download for a tombstone');
});

await check('markup in a payload, a key, a header and an event type is shown, never run', async (page) => {
  await page.goto(at(`/console/records/${enc(cases.markup_record)}`));
  await page.waitForSelector('[data-payload="json"]');
  const text = await page.locator('main').textContent();
  expect(text.includes('<script>window.__pwned = 1</script>'), 'the script text is shown');
  expect(text.includes('<img src=x onerror=window.__pwned=2>'), 'the img text is shown');
  same(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
  same(await page.locator('main img, main script').count(), 0, 'no element was made from the data');
  await page.goto(at(`/console/orders/${enc(cases.markup_order)}`));
  await page.waitForSelector('table.list tbody tr');
  same(await page.evaluate(() => window.__pwned), undefined, 'nothing ran in the list');
  same(await page.locator('main img').count(), 0, 'no img in the list');
});

await check('the layout works on a narrow screen', async (page) => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(at(`/console/correlations/${enc(cases.correlation)}`));
  await page.waitForSelector('.lanes .step');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  const services = await page.$$eval('.lanes .step .service', (s) => s.map((e) => getComputedStyle(e).display));
  expect(services.every((d) => d !== 'none'), 'each step names its service when the lanes stack');
  await page.screenshot({ path: join(artifacts, 'timeline-narrow.png'), fullPage: true });
  await page.goto(at(`/console/customers/${enc(cases.many)}`));
  await page.waitForSelector('table.list tbody tr');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(wide <= 0, `the history is ${wide}px wider than the screen`);
});

await check('a bad link is a clear page, and nothing found says so', async (page) => {
  const response = await page.goto(at('/console/invoices/1'));
  same(response.status(), 404, 'an unknown kind');
  expect((await page.locator('main').textContent()).includes('no such page'), 'the page says why');
  await page.goto(at('/console/?q=nothing-has-this-id'));
  await page.waitForSelector('[role="alert"]');
  expect((await page.locator('main').textContent()).includes('Nothing has this id'), 'nothing found');
  await page.goto(at('/console/records/no-such-topic%3A0%3A1'));
  await page.waitForSelector('.error');
  expect((await page.locator('.error').textContent()).includes('404'), 'an unknown record');
});

await browser.close();
console.log(failed ? `${failed} check(s) failed; screenshots in ${artifacts}` : `all checks passed; screenshots in ${artifacts}`);
process.exit(failed ? 1 : 0);
