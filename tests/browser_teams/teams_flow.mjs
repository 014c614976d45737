// A case card in Microsoft's local Teams client (Agents Playground), driven in headless Chromium (Debian's) by
// playwright-core: the card appears in a team channel, Alex claims it, resolves it with a note.
// Usage: node teams_flow.mjs PLAYGROUND_URL SCREENSHOT_DIR
// Env:
//   TEAMS_FLOW_CUSTOMER      customer name the case card shows (default "Dana Scully")
//   TEAMS_FLOW_USER          the playground user who clicks (default "Alex Wilber", its default user)
//   TEAMS_FLOW_CHANNEL       sidebar entry to open before the card is posted (default "General")
//   TEAMS_FLOW_EVENT_URL     if set, once the channel is open: POST the customer's message here (a generic webhook
//                            event); otherwise print "ready: ..." and wait for the card to be posted by someone else
//   TEAMS_FLOW_EVENT         JSON body to post (default: a mention from TEAMS_FLOW_CUSTOMER saying TEAMS_FLOW_TEXT)
//   TEAMS_FLOW_EVENT_SECRET  if set, sign the event like a listening tool (X-SocialOps-Timestamp/-Signature)
//   TEAMS_FLOW_TEXT          the customer's message (default "My parcel never arrived, order 7731")
//   TEAMS_FLOW_NOTE          resolution note typed if the bot asks for one (default "Fixed")
//   TEAMS_FLOW_TIMEOUT       milliseconds to wait for each step (default 20000)
//   TEAMS_FLOW_DUMP          on failure, also write the page's HTML to this file
//   CHROMIUM                 browser binary (default /usr/bin/chromium)
// The playground keeps no history: the page must be open on the channel before the bot posts the card.
// Exits 0 after "ok: every step passed"; otherwise prints the failed step and leaves teams-failure.png.
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node teams_flow.mjs PLAYGROUND_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const env = process.env;
const customer = env.TEAMS_FLOW_CUSTOMER || 'Dana Scully';
const user = env.TEAMS_FLOW_USER || 'Alex Wilber';
const channel = env.TEAMS_FLOW_CHANNEL || 'General';
const text = env.TEAMS_FLOW_TEXT || 'My parcel never arrived, order 7731';
const note = env.TEAMS_FLOW_NOTE || 'Fixed';
const WAIT = Number(env.TEAMS_FLOW_TIMEOUT || 20_000);
// Statuses exactly as the card shows them ("Resolved" alone would also match the form's "Mark resolved" button).
const CLAIMED = '🟡 Claimed';
const RESOLVED = '✅ Resolved';
const SUBMIT = /^\s*(resolve|save|submit|done|ok|send)\s*$/i;
// The playground's stylesheet asks Microsoft's CDN for Segoe UI fonts: aborted like everything else, not a failure.
const EXPECTED_OFFSITE = (url) => url.hostname === 'res-1.cdn.office.net' && url.pathname.endsWith('.woff2');
const loopback = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
const offsite = [];
const problems = [];
let step = 'start';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(WAIT);
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (loopback(url)) return route.continue();
  if (!EXPECTED_OFFSITE(url)) offsite.push(url.href);
  return route.abort();
});
page.on('websocket', (socket) => { if (!loopback(new URL(socket.url()))) offsite.push(socket.url()); });
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
// A case card: a rendered Adaptive Card naming the customer and offering buttons (thread notes have none).
const caseCard = (...texts) => {
  let cards = page.locator('.ac-adaptiveCard', { hasText: customer }).filter({ has: page.locator('.ac-actionSet') });
  for (const needle of texts) cards = cards.filter({ hasText: needle });
  return cards.first();
};
const button = (scope, title) => scope.getByRole('button', { name: title, exact: true }).first();
const visibleButtons = async (scope) => {
  const titles = [];
  for (const one of await scope.getByRole('button').all()) {
    if (await one.isVisible()) titles.push(((await one.getAttribute('title')) || (await one.innerText())).trim());
  }
  return titles;
};

async function postEvent() {
  const body = env.TEAMS_FLOW_EVENT || JSON.stringify({
    id: `teams-flow-${Date.now()}`, kind: 'mention', platform: 'x', conversation: `teams-flow-${Date.now()}`, text,
    author: { id: 'teams-flow-customer', name: customer, handle: '@customer', followers: 812 },
  });
  const headers = { 'Content-Type': 'application/json' };
  if (env.TEAMS_FLOW_EVENT_SECRET) {
    const stamp = String(Math.floor(Date.now() / 1000));
    headers['X-SocialOps-Timestamp'] = stamp;
    headers['X-SocialOps-Signature'] = 'sha256=' + createHmac('sha256', env.TEAMS_FLOW_EVENT_SECRET)
      .update(`${stamp}.${body}`).digest('hex');
  }
  const response = await fetch(env.TEAMS_FLOW_EVENT_URL, { method: 'POST', body, headers });
  check(response.ok, `the event webhook answered ${response.status}: ${await response.text()}`);
}

// After Resolve the bot may ask for a note: in a dialog (task module), inline in the card (an input that appears,
// or an Action.ShowCard), or not at all. Fill in the note and press the button that sends it.
async function answerResolve(before) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (await caseCard(RESOLVED).count()) return 'no note asked';
    const dialog = page.locator('[role="dialog"]').filter({ has: page.locator('textarea, input[type="text"]') });
    if (await dialog.count() && await dialog.first().isVisible()) {
      await dialog.first().locator('textarea, input[type="text"]').first().fill(note);
      const titles = await visibleButtons(dialog.first());
      const submit = titles.filter((title) => SUBMIT.test(title)).pop();
      check(submit, `the dialog has no submit button (buttons: ${titles.join(', ')})`);
      await button(dialog.first(), submit).click();
      return `dialog, pressed ${submit}`;
    }
    const card = caseCard();
    const box = card.locator('textarea, input[type="text"]').filter({ visible: true });
    if (await box.count()) {
      await box.first().fill(note);
      const titles = await visibleButtons(card);
      const fresh = titles.filter((title) => !before.includes(title));
      const submit = fresh.filter((title) => SUBMIT.test(title)).pop() || fresh.pop()
        || titles.filter((title) => SUBMIT.test(title)).pop();
      check(submit, `the card asks for a note but has no button to send it (buttons: ${titles.join(', ')})`);
      await button(card, submit).click();
      return `inline input, pressed ${submit}`;
    }
    await page.waitForTimeout(200);
  }
  throw new Error('after Resolve, neither a note input nor "Resolved" appeared');
}

try {
  step = 'open the playground on the channel';
  await page.goto(base);
  await page.getByText(channel, { exact: true }).first().click();
  await page.locator('[data-lexical-editor="true"]').first().waitFor();
  await page.waitForTimeout(500);  // the playground tells the bot about the conversation (installationUpdate)

  step = 'the case card appears';
  if (env.TEAMS_FLOW_EVENT_URL) await postEvent();
  else console.log(`ready: ${channel} is open`);
  const card = caseCard();
  await card.waitFor();
  check(await button(card, 'Claim').count() === 1,
    `the new case card offers Claim (buttons: ${(await visibleButtons(card)).join(', ')})`);
  check((await card.innerText()).includes('Open'), 'the new case card shows the status Open');
  await card.scrollIntoViewIfNeeded();
  await shot('teams-01-card');

  step = `Claim as ${user}`;
  await button(card, 'Claim').click();
  const claimed = caseCard(user, CLAIMED);
  await claimed.waitFor();
  check(await button(claimed, 'Release').count() === 1,
    `the claimed card offers Release to its owner (buttons: ${(await visibleButtons(claimed)).join(', ')})`);
  // The bot also updates the card for everyone (update_activity), then logs the claim in the card's thread: once the
  // log line is there the update has landed, and it cannot fold up a form opened after it.
  await page.getByText(`${user} claimed the case.`).first().waitFor();
  await page.waitForTimeout(300);
  await claimed.scrollIntoViewIfNeeded();
  await shot('teams-02-claimed');

  step = 'Resolve';
  const before = await visibleButtons(claimed);
  check(before.includes('Resolve'), `the claimed card offers Resolve (buttons: ${before.join(', ')})`);
  await button(claimed, 'Resolve').click();
  const how = await answerResolve(before);
  const resolved = caseCard(RESOLVED);
  await resolved.waitFor();
  if (how !== 'no note asked') {
    check((await resolved.innerText()).includes(note), `the resolved card shows the note ${JSON.stringify(note)}`);
  }
  const after = await visibleButtons(resolved);
  check(after.includes('Reopen') && !after.includes('Claim') && !after.includes('Take over') && !after.includes('Resolve'),
    `the resolved card offers Reopen only (buttons: ${after.join(', ')})`);
  await page.waitForTimeout(1500);  // a late update of an older state must not bring the card back
  check(await caseCard(RESOLVED).count() === 1,
    `the card went back from Resolved to: ${JSON.stringify(await caseCard().innerText())}`);
  await resolved.scrollIntoViewIfNeeded();
  await shot('teams-03-resolved');
  console.log(`resolve: ${how}`);

  step = 'nothing left the machine, the page had no errors';
  check(offsite.length === 0, `requests beyond this machine: ${offsite.join(', ')}`);
  check(problems.length === 0, problems.join('; '));
  console.log('ok: every step passed');
} catch (error) {
  console.error(`FAILED at step "${step}": ${error.message.split('\n')[0]}`);
  // The post around the card also holds the playground's note on the last click ("Your response was sent to the
  // app", or the error the bot answered).
  const post = page.locator('[role="group"]', { has: page.locator('.ac-adaptiveCard', { hasText: customer }) });
  if (await post.count().catch(() => 0)) {
    console.error(`the case card reads: ${JSON.stringify(await post.last().innerText().catch(() => '?'))}`);
  }
  if (offsite.length) console.error(`requests beyond this machine: ${offsite.join(', ')}`);
  if (problems.length) console.error(problems.join('\n'));
  await shot('teams-failure').catch(() => {});
  if (env.TEAMS_FLOW_DUMP) await import('node:fs').then((fs) => page.content().then((html) => fs.writeFileSync(env.TEAMS_FLOW_DUMP, html))).catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
