// Uses the gateway's REST API reference (Swagger UI) as a person would, in Debian's chromium driven by
// playwright-core: loads the page, waits for the operations read from the OpenAPI document, opens
// `POST /api/v1/account`, fills in "Try it out" with a name, executes it, and keeps a screenshot of the answer.
// Fails when the page asks for anything from another origin than the gateway's (the page must work offline),
// throws, logs an error, or the answer is not the account created.
//
//   node reference.mjs <reference page URL> <screenshot file> <account name>
//
// Prints one JSON line: the operations the page listed, and the status, Location and body Swagger UI showed.

import { withOfflinePage } from './offline-page.mjs';

const [url, screenshot, name] = process.argv.slice(2);
if (!url || !screenshot || !name) {
  console.error('usage: node reference.mjs <reference page URL> <screenshot file> <account name>');
  process.exit(2);
}
const OPERATION_PATH = '/api/v1/account';

const gateway = new URL(url).origin;
const viewport = { width: 1400, height: 1000 };
// The API's own answers are what "Try it out" shows, and this script judges them; any other failure is the page's.
const expectedFailure = (response) => new URL(response.url()).pathname === OPERATION_PATH;
await withOfflinePage({ url, screenshot, viewport, fullPage: true, expectedFailure }, async (page, problems) => {
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
});
