// Uses the gateway's REST API reference (Swagger UI) as a person would, in Debian's chromium driven by
// playwright-core: loads the page, waits for the operations read from the OpenAPI document, opens
// `POST /api/v1/account`, fills in "Try it out" with a name, executes it, and keeps a screenshot of the answer.
// Fails when the page asks for anything from another origin than the gateway's (the page must work offline),
// throws, logs an error, or the answer is not the account created.
//
//   node reference.mjs <reference page URL> <screenshot file> <account name>
//
// Prints one JSON line: the operations the page listed, and the status, Location and body Swagger UI showed.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, screenshot, name] = process.argv.slice(2);
if (!url || !screenshot || !name) {
  console.error('usage: node reference.mjs <reference page URL> <screenshot file> <account name>');
  process.exit(2);
}
const TIMEOUT_MS = 30_000;
const OPERATION_PATH = '/api/v1/account';

const gateway = new URL(url).origin;
const problems = [];

// A fresh profile, so no cache or stored state of an earlier run plays a part.
mkdirSync(dirname(screenshot), { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'shop-reference-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1000 },
  // The flags keep chromium from calling home; this machine has no internet.
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  context.setDefaultTimeout(TIMEOUT_MS);
  await context.route('**/*', (route) => {
    const requested = new URL(route.request().url());
    if (requested.protocol === 'data:' || requested.origin === gateway) return route.continue();
    problems.push(`request outside the gateway: ${requested.href}`);
    console.error(`Blocked a request outside the gateway: ${requested.href}`);
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (error) => problems.push(`uncaught in the page: ${error.message}`));
  page.on('console', (message) => {
    // A resource that failed to load is reported, with its URL, by the response handler below.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    // The API's own answers are what "Try it out" shows; any other failure is the page's.
    const answered = new URL(response.url());
    if (response.status() >= 400 && answered.pathname !== OPERATION_PATH) {
      problems.push(`${response.status()} for ${response.url()}`);
    }
  });

  // Load: every asset, and the operations rendered from the document.
  await page.goto(url, { waitUntil: 'networkidle' });
  const operation = page.locator('.opblock.opblock-post', {
    has: page.locator(`.opblock-summary-path[data-path="${OPERATION_PATH}"]`),
  });
  await operation.waitFor();
  const operations = await page.locator('.opblock-summary').evaluateAll((summaries) =>
    summaries.map((summary) => {
      const method = summary.querySelector('.opblock-summary-method')?.textContent ?? '?';
      const path = summary.querySelector('.opblock-summary-path')?.dataset.path ?? '?';
      return `${method} ${path}`;
    }),
  );

  // Open the operation, switch it to "Try it out", put the body in and execute it.
  await operation.locator('.opblock-summary').click();
  await operation.locator('button.try-out__btn').click();
  await operation.locator('textarea.body-param__text').fill(JSON.stringify({ name }));
  const [sent] = await Promise.all([
    page.waitForRequest((request) => new URL(request.url()).pathname === OPERATION_PATH),
    operation.locator('button.execute').click(),
  ]);
  const answer = operation.locator('.live-responses-table .response');
  await answer.locator('.response-col_status').waitFor();
  const status = Number((await answer.locator('.response-col_status').innerText()).trim());
  // Swagger UI titles each part of the answer with an h5 and shows it in the pre that follows.
  const shown = (title) =>
    answer.locator(`xpath=.//h5[text()="${title}"]/following-sibling::*[1]/descendant-or-self::pre`).innerText();
  const body = await shown('Response body');
  const headers = await shown('Response headers');
  const location = headers.match(/^\s*location:\s*(\S+)/im)?.[1] ?? null;

  await page.screenshot({ path: screenshot, fullPage: true });

  const account = JSON.parse(body);
  if (sent.method() !== 'POST' || new URL(sent.url()).origin !== gateway) {
    problems.push(`the request went out as ${sent.method()} ${sent.url()}`);
  }
  if (status !== 201) problems.push(`the page showed status ${status}, not 201: ${body}`);
  if (account.name !== name) problems.push(`the page showed no account named ${name}: ${body}`);
  const request = { method: sent.method(), url: sent.url() };
  console.log(JSON.stringify({ operations, request, status, location, account }));
} catch (error) {
  problems.push(String(error?.stack ?? error));
  // What the page showed when it went wrong, in place of the screenshot it did not get to.
  await context.pages()[0]?.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
