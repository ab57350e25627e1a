// What both page scripts share: Debian's chromium, driven by playwright-core, on a fresh profile, with every
// request to another origin than the gateway's refused (the pages must work offline), and every uncaught error,
// console error and failed load counted as a problem. `usePage` does the script's own part; on a throw, the
// screenshot shows what the page showed when it went wrong. Exits non-zero, listing the problems, if there were any.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT_MS = 30_000;

/**
 * Opens `url` in chromium and runs `usePage(page, problems)`.
 *
 * @param {object} options
 * @param {string} options.url the page
 * @param {string} options.screenshot where the screenshot goes (the script takes it; here only on failure)
 * @param {{width: number, height: number}} options.viewport
 * @param {boolean} options.fullPage whether a failure's screenshot takes the whole page
 * @param {(response: import('playwright-core').Response) => boolean} [options.expectedFailure] answers of 400 or
 *   more that are the script's to judge (an API's answer shown on the page), not a failed load
 * @param {(page: import('playwright-core').Page, problems: string[]) => Promise<void>} usePage
 */
export async function withOfflinePage(options, usePage) {
  const { url, screenshot, viewport, fullPage, expectedFailure = () => false } = options;
  const gateway = new URL(url).origin;
  const problems = [];
  mkdirSync(dirname(screenshot), { recursive: true });
  // A fresh profile, so no stored state or cache of an earlier run plays a part.
  const profile = mkdtempSync(join(tmpdir(), 'shop-interop-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport,
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
      if (response.status() >= 400 && !expectedFailure(response)) {
        problems.push(`${response.status()} for ${response.url()}`);
      }
    });
    await usePage(page, problems);
  } catch (error) {
    problems.push(String(error?.stack ?? error));
    await context.pages()[0]?.screenshot({ path: screenshot, fullPage }).catch(() => {});
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
}
