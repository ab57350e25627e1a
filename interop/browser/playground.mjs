// Uses the gateway's playground as a person would, in Debian's chromium driven by playwright-core: loads the page,
// opens the schema's documentation at the query type, types a query, runs it, and keeps a screenshot of the docs
// and the result. Fails when the page asks for anything from another origin than the gateway's (the page must
// work offline), throws, or logs an error (see offline-page.mjs).
//
//   node playground.mjs <playground URL> <screenshot file> <text the result must contain>
//
// Prints one JSON line: the root fields the docs listed and the result GraphiQL showed.

import { withOfflinePage } from './offline-page.mjs';

const [url, screenshot, expected] = process.argv.slice(2);
if (!url || !screenshot || !expected) {
  console.error('usage: node playground.mjs <playground URL> <screenshot file> <expected text>');
  process.exit(2);
}
const QUERY = '{ accounts { id name } }';

const viewport = { width: 1400, height: 800 };
await withOfflinePage({ url, screenshot, viewport, fullPage: false }, async (page, problems) => {
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
});
