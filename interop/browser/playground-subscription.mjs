// Runs a subscription in the gateway's playground, in Debian's chromium driven by playwright-core: starts
// `accountOrders` for an account that already has an order (so the first result shows the subscription is live),
// places a new order for it from Node (fetch, as another client would), and waits until the playground shows that
// order CONFIRMED — pushed over the WebSocket, never asked for. Fails like playground.mjs on anything from another
// origin, an exception or a logged error.
//
//   node playground-subscription.mjs <playground URL> <screenshot file> <account id> <product id>
//
// Prints one JSON line: the new order's id and every result the playground showed, in order.

import { withOfflinePage } from './offline-page.mjs';

const [url, screenshot, accountId, productId] = process.argv.slice(2);
if (!url || !screenshot || !accountId || !productId) {
  console.error('usage: node playground-subscription.mjs <playground URL> <screenshot file> <account id> <product id>');
  process.exit(2);
}
const SUBSCRIPTION = `subscription { accountOrders(accountId: "${accountId}") { id version status totalPrice } }`;

const viewport = { width: 1400, height: 800 };
await withOfflinePage({ url, screenshot, viewport, fullPage: false }, async (page, problems) => {
  await page.goto(url, { waitUntil: 'networkidle' });
  await page.locator('.graphiql-container').waitFor();

  // Start the subscription (typed over the editor's content, as in playground.mjs).
  await page.locator('.graphiql-query-editor .CodeMirror').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(SUBSCRIPTION);
  await page.locator('.graphiql-execute-button:not([aria-haspopup])').click();

  // Every result the result pane shows, as it changes.
  const resultWindow = page.locator('.result-window');
  const shown = async () =>
    resultWindow.evaluate((node) => node.querySelector('.CodeMirror').CodeMirror.getValue());
  const results = [];
  const next = async (predicate) => {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const text = await shown();
      if (text && text !== results[results.length - 1]) {
        results.push(text);
        if (predicate(JSON.parse(text))) return JSON.parse(text);
      }
      await page.waitForTimeout(50);
    }
    throw new Error(`no such result in time; shown: ${JSON.stringify(results)}`);
  };
  // The account's existing order: the subscription is live.
  await next((result) => result.data?.accountOrders?.status !== undefined);

  // Another client places an order; the playground must show it confirmed without being asked.
  const response = await fetch(new URL('/graphql', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'mutation($order: OrderInput!) { createOrder(order: $order) { id } }',
      variables: { order: { accountId, products: [{ id: productId, quantity: 1 }] } },
    }),
  });
  const placed = (await response.json()).data?.createOrder?.id;
  if (!placed) problems.push(`the order could not be placed: ${response.status}`);
  await next((result) => result.data?.accountOrders?.id === placed && result.data.accountOrders.status === 'CONFIRMED');

  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ placed, results: results.map((text) => JSON.parse(text)) }));
});
