// The sandbox page in headless Chromium (Debian's), driven by playwright-core: the whole loop as a
// support team sees it, plus hostile customer text. Usage: node sandbox_flow.mjs BASE_URL SCREENSHOT_DIR
// Env: GENERIC_WEBHOOK_SECRET (to post events like a listening tool), CHROMIUM (default /usr/bin/chromium).
// Exits 0 when every step passed; otherwise prints the failed step and leaves a failure screenshot.
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node sandbox_flow.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const secret = process.env.GENERIC_WEBHOOK_SECRET || 'sandbox-webhook-secret';
const WAIT = 20_000;
const problems = [];
const offsite = [];
let step = 'start';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function postEvent(event) {
  const body = JSON.stringify(event);
  const stamp = String(Math.floor(Date.now() / 1000));
  const signature = 'sha256=' + createHmac('sha256', secret).update(`${stamp}.${body}`).digest('hex');
  const response = await fetch(`${base}/webhooks/generic`, {
    method: 'POST', body,
    headers: { 'Content-Type': 'application/json', 'X-SocialOps-Timestamp': stamp, 'X-SocialOps-Signature': signature },
  });
  check(response.status === 202, `the webhook answered ${response.status}: ${await response.text()}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(WAIT);
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
  offsite.push(url.href);
  return route.abort();
});
page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`); });
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
const card = (needle) => page.locator('[data-testid^="message-"]', { hasText: needle }).first();
const button = (scope, label) => scope.locator('.bk-button', { hasText: new RegExp(`^\\s*${label}\\s*$`) }).first();

async function as(persona) {
  await page.getByTestId(`persona-${persona}`).click();
  await page.getByTestId('current-persona').filter({ hasText: { U0ALICE: 'Alice', U0BOB: 'Bob', U0CAROL: 'Carol' }[persona] })
    .waitFor();
}

async function outgoing(needle) {
  return page.getByTestId('customer-pane').locator('[data-testid="customer-message"][data-direction="out"]',
    { hasText: needle });
}

try {
  step = 'open the sandbox page';
  await page.goto(`${base}/sandbox`);
  await as('U0ALICE');
  await page.getByTestId('channel-C0CASES').click();

  step = 'a posted event appears as a card, live';
  await postEvent({ id: 'browser-1', kind: 'mention', text: 'My parcel never arrived, order 5521',
    author: { id: 'dana', name: 'Dana Scully', handle: '@dana', followers: 812 }, platform: 'x',
    conversation: 'browser-conv-1' });
  const dana = card('order 5521');
  await dana.waitFor();
  check(await dana.locator('.bk-button', { hasText: 'Claim' }).count() === 1, 'the card has one Claim button');
  await shot('01-new-case-card');

  step = 'Claim as Alice';
  await button(dana, 'Claim').click();
  await dana.filter({ hasText: 'Claimed' }).waitFor();

  step = 'Bob sees who owns it';
  await as('U0BOB');
  await card('order 5521').filter({ hasText: '@Alice' }).waitFor();
  await button(card('order 5521'), 'Claim').click();
  const told = page.getByTestId('ephemeral').filter({ hasText: 'already claimed by' });
  await told.waitFor();
  check((await told.innerText()).includes('@Alice'), 'Bob is told that Alice owns the case');
  await shot('02-bob-sees-alice-owns-it');

  step = 'Reply through the modal, as Alice';
  await as('U0ALICE');
  check(await page.getByTestId('ephemeral').filter({ hasText: 'already claimed by' }).count() === 0,
    "Bob's private note is not shown to Alice");
  await button(card('order 5521'), 'Reply').click();
  const modal = page.getByTestId('modal');
  await modal.waitFor();
  const box = modal.locator('textarea.bk-text').first();
  check((await box.inputValue()).startsWith('Hi Dana, '), `pre-filled greeting, got ${JSON.stringify(await box.inputValue())}`);
  await modal.locator('select.bk-select').selectOption({ label: 'Sorry' });  // views.update with the saved reply
  await modal.locator('textarea.bk-text', { hasText: 'sorry about that' }).first().waitFor();
  check((await modal.locator('textarea.bk-text').first().inputValue()).startsWith('Hi Dana, sorry about that'),
    'the saved reply replaced the text');
  await modal.locator('textarea.bk-text').first().fill('Hi Dana, so sorry! A new parcel ships today.');
  await shot('03-reply-modal');
  await page.getByTestId('modal-submit').click();
  await modal.waitFor({ state: 'detached' });

  step = 'the customer pane shows exactly one reply';
  await page.getByTestId('customer-toggle').click();
  await page.getByTestId('customer-pane').waitFor();
  await (await outgoing('A new parcel ships today')).first().waitFor();
  await card('order 5521').filter({ hasText: 'sent' }).waitFor();
  await page.waitForTimeout(1000);
  const replies = await (await outgoing('A new parcel ships today')).count();
  check(replies === 1, `exactly one reply reached the customer, saw ${replies}`);
  await shot('04-reply-at-the-customer');

  step = 'Resolve';
  await button(card('order 5521'), 'Resolve').click();
  await modal.waitFor();
  await page.getByTestId('modal-submit').click();
  await modal.waitFor({ state: 'detached' });
  await card('order 5521').filter({ hasText: 'Resolved' }).waitFor();

  step = 'the check-in prompt appears in the thread';
  const ts = (await card('order 5521').getAttribute('data-testid')).replace('message-', '');
  await page.getByTestId(`thread-${ts}`).waitFor({ timeout: 30_000 });
  await page.getByTestId(`thread-${ts}`).click();
  const thread = page.getByTestId('thread-pane');
  const prompt = thread.locator('.bk-block', { hasText: 'Check-in due' }).first();
  await prompt.waitFor({ timeout: 30_000 });
  await shot('05-check-in-prompt');

  step = 'Send check-in: the customer pane shows it';
  await button(thread, 'Send check-in').click();
  await (await outgoing('checking in')).first().waitFor();
  await thread.locator('.bk-block', { hasText: 'Check-in sent by' }).first().waitFor();
  check(await (await outgoing('checking in')).count() === 1, 'one check-in reached the customer');
  await shot('06-check-in-at-the-customer');

  step = 'hostile customer text renders as text';
  const hostile = 'ALERT-9 <!channel> <@U0ALICE> <https://evil.example|https://good.example> '
    + '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> *bold* @here javascript:alert(1)';
  await postEvent({ id: 'browser-2', kind: 'mention', text: hostile,
    author: { id: 'mallory', name: '<b>Mallory</b> <@U0BOB>', handle: '@mallory' }, platform: 'x' });
  const evil = card('ALERT-9');
  await evil.waitFor();
  const shown = await evil.innerText();
  for (const literal of ['<!channel>', '<@U0ALICE>', '<script>window.__pwned=1</script>', '<b>Mallory</b>', '<@U0BOB>']) {
    check(shown.includes(literal), `the literal text ${literal} is visible, got: ${shown}`);
  }
  check(await evil.locator('a[href*="evil.example"], script, img, .bk-broadcast').count() === 0,
    'no link to evil.example, no script, no image, no broadcast');
  check(await evil.locator('.bk-mention').count() === 0, 'customer text mentions nobody');
  check(await page.evaluate(() => window.__pwned === undefined), 'no customer script ran');
  await evil.scrollIntoViewIfNeeded();
  await shot('07-hostile-text');

  step = '/social stats from the message box';
  await page.getByTestId('customer-toggle').click();
  await page.getByTestId('composer').fill('/social stats');
  await page.getByTestId('composer').press('Enter');
  await page.getByTestId('ephemeral').filter({ hasText: 'SocialOps stats' }).waitFor();
  await shot('08-stats');

  step = 'Carol, on call, sees the escalation ping live in her own browser';
  const carolContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await carolContext.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
    offsite.push(url.href);
    return route.abort();
  });
  const carol = await carolContext.newPage();
  carol.setDefaultTimeout(WAIT);
  carol.on('pageerror', (error) => problems.push(`page error (Carol): ${error.message}`));
  await carol.goto(`${base}/sandbox`);
  await carol.getByTestId('persona-U0CAROL').click();
  await carol.getByTestId('current-persona').filter({ hasText: 'Carol' }).waitFor();
  await carol.getByTestId('channel-C0CASES').click();
  await button(card('ALERT-9'), 'Escalate').click();  // Alice, in the first browser
  await modal.waitFor();
  await modal.locator('textarea.bk-text').first().fill('Looks like an account takeover attempt');
  await page.getByTestId('modal-submit').click();
  await modal.waitFor({ state: 'detached' });
  await carol.getByTestId('mention-C0ESCAL').waitFor();
  await carol.getByTestId('channel-C0ESCAL').click();
  const ping = carol.locator('[data-testid^="message-"]', { hasText: 'account takeover' }).first();
  await ping.locator('.bk-mention-me', { hasText: '@Carol' }).waitFor();
  await carol.getByTestId('composer').fill('/social oncall');
  await carol.getByTestId('composer').press('Enter');
  await carol.getByTestId('ephemeral').filter({ hasText: 'On call: @Carol' }).waitFor();
  await carol.screenshot({ path: join(shots, '09-carol-sees-the-on-call-ping.png') });
  const [opened] = await Promise.all([carolContext.waitForEvent('page'), ping.locator('a.bk-link', { hasText: 'Open the case' }).click()]);
  await opened.locator('[data-testid^="message-"]', { hasText: 'ALERT-9' }).first().waitFor();
  check(new URL(opened.url()).pathname === '/sandbox', `the permalink opens the sandbox page, got ${opened.url()}`);
  await carolContext.close();

  check(offsite.length === 0, `requests left the machine: ${offsite.join(', ')}`);
  check(problems.length === 0, `the page reported errors: ${problems.join(' | ')}`);
  console.log(`ok: every step passed; screenshots in ${shots}`);
  await browser.close();
} catch (error) {
  console.error(`FAILED at step "${step}": ${error.message}`);
  if (problems.length) console.error(`page problems: ${problems.join(' | ')}`);
  await page.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
  await browser.close();
  process.exit(1);
}
