// Uses the gateway's playground as a person would, in Debian's chromium driven by playwright-core: loads the page,
// opens the schema's documentation at the query type, types a query, runs it, and keeps a screenshot of the docs
// and the result. Fails when the page asks for anything outside this machine (the page must work offline), throws,
// or logs an error.
//
//   node playground.mjs <playground URL> <screenshot file> <text the result must contain>
//
// Prints one JSON line: the root fields the docs listed and the result GraphiQL showed.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, screenshot, expected] = process.argv.slice(2);
if (!url || !screenshot || !expected) {
  console.error('usage: node playground.mjs <playground URL> <screenshot file> <expected text>');
  process.exit(2);
}
const QUERY = '{ accounts { id name } }';
const TIMEOUT_MS = 30_000;

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const problems = [];

// A fresh profile, so no stored query, tab or cache of an earlier run plays a part.
mkdirSync(dirname(screenshot), { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'shop-playground-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 800 },
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
    const { protocol, hostname } = new URL(route.request().url());
    if (protocol === 'data:' || LOCAL_HOSTS.has(hostname)) return route.continue();
    problems.push(`request outside this machine: ${route.request().url()}`);
    console.error(`Blocked a request outside this machine: ${route.request().url()}`);
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
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });

  // Load: every asset, and GraphiQL mounted.
  await page.goto(url, { waitUntil: 'networkidle' });
  await page.locator('.graphiql-container').waitFor();

  // The docs: the explorer lists the root types once the introspection answer came back; the query type lists
  // the root fields.
  await page.locator('[aria-label="Show Documentation Explorer"]').click();
  const docs = page.locator('.graphiql-doc-explorer');
  await docs.getByText('Root Types').waitFor();
  await docs.locator('.graphiql-doc-explorer-root-type', { hasText: 'query' }).locator('xpath=..').locator('a').click();
  await docs.locator('.graphiql-doc-explorer-field-name', { hasText: /^accounts$/ }).waitFor();
  const rootFields = await docs.locator('.graphiql-doc-explorer-field-name').allInnerTexts();

  // Type the query over the editor's content (inserted as typed text: keystrokes would get CodeMirror's
  // auto-closed brackets) and run it with the execute button.
  await page.locator('.graphiql-query-editor .CodeMirror').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(QUERY);
  // GraphiQL parses the editor's content a moment after an edit; until then it still knows the page's default
  // operations, and the button opens a menu to choose one of them instead of running the query.
  await page.locator('.graphiql-execute-button:not([aria-haspopup])').click();
  const resultWindow = page.locator('.result-window');
  await resultWindow.getByText(expected).first().waitFor();
  const result = await resultWindow.evaluate((node) => node.querySelector('.CodeMirror').CodeMirror.getValue());

  await page.screenshot({ path: screenshot });

  const data = JSON.parse(result).data;
  if (!data?.accounts?.some((account) => account.name === expected)) {
    problems.push(`the result shows no account named ${expected}: ${result}`);
  }
  console.log(JSON.stringify({ rootFields, query: QUERY, result: JSON.parse(result) }));
} catch (error) {
  problems.push(String(error?.stack ?? error));
  // What the page showed when it went wrong, in place of the screenshot it did not get to.
  await context.pages()[0]?.screenshot({ path: screenshot }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
