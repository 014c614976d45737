// The README's picture of the sandbox: a few minutes of sample traffic, one case claimed and answered.
// Usage: node readme_screenshot.mjs BASE_URL OUT.png   (scripts/screenshot.sh starts the sandbox for it)
import { chromium } from 'playwright-core';

const [base, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: 1440, height: 860 } });
page.setDefaultTimeout(60_000);
await page.goto(`${base}/sandbox`);
await page.getByTestId('persona-U0ALICE').click();
const cards = page.locator('[data-testid^="message-"]');
await cards.nth(4).waitFor();
const first = cards.first();
await first.locator('.bk-button', { hasText: /^\s*Claim\s*$/ }).click();
await first.filter({ hasText: 'Claimed' }).waitFor();
await first.locator('.bk-button', { hasText: /^\s*Reply\s*$/ }).click();
await page.getByTestId('modal').waitFor();
await page.locator('[data-testid="modal"] textarea.bk-text').first().press('End');
await page.locator('[data-testid="modal"] textarea.bk-text').first().type('thanks for telling us! We are on it.');
await page.getByTestId('modal-submit').click();
await page.getByTestId('modal').waitFor({ state: 'detached' });
await page.getByTestId('customer-toggle').click();
const answered = page.locator('section.conv', { has: page.locator('[data-testid="customer-message"][data-direction="out"]') });
await answered.first().waitFor();
await answered.first().locator('.conv-head').click();
await answered.first().scrollIntoViewIfNeeded();
await page.waitForTimeout(1500);
await page.screenshot({ path: out });
await browser.close();
console.log(`saved ${out}`);
