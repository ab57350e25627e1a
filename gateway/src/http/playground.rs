//! `/playground`: GraphiQL, served entirely by the gateway — the page, GraphiQL's bundle and the React it runs on —
//! so it works on a machine with no internet access.
//!
//! The bundles come from the npm packages pinned in `build.rs` and are compiled into the binary. Their URLs carry
//! the package versions, so browsers may cache them for good; the page itself is never cached, and its Content
//! Security Policy lets it load nothing and talk to nothing but this gateway.

use axum::Router;

use super::assets::{Asset, BundledPage, CSS, JAVASCRIPT, bundled};

/// The page: the stylesheet, React, GraphiQL, and the script that mounts it on `/graphql`.
const PAGE: &str = concat!(
    r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop GraphQL playground</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/playground/graphiql-"#,
    env!("PLAYGROUND_GRAPHIQL_VERSION"),
    r#"/graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql">Loading the playground…</div>
<script src="/playground/react-"#,
    env!("PLAYGROUND_REACT_VERSION"),
    r#"/react.production.min.js"></script>
<script src="/playground/react-dom-"#,
    env!("PLAYGROUND_REACT_DOM_VERSION"),
    r#"/react-dom.production.min.js"></script>
<script src="/playground/graphiql-"#,
    env!("PLAYGROUND_GRAPHIQL_VERSION"),
    r#"/graphiql.min.js"></script>
<script src="/playground/mount.js"></script>
</body>
</html>
"#
);

/// Mounts GraphiQL on the gateway's own endpoint. A file rather than an inline script, so the page's policy can
/// forbid inline scripts.
const MOUNT: &str = r#"const url = new URL('/graphql', window.location.href).href;
// Subscriptions run over a WebSocket (graphql-transport-ws, with the graphql-ws client GraphiQL bundles), where a
// browser cannot send headers: the Authorization header of the headers editor goes in connection_init instead.
const fetcher = (params, options) => {
  const headers = (options && options.headers) || {};
  const authorization = headers.Authorization || headers.authorization;
  return GraphiQL.createFetcher({
    url,
    subscriptionUrl: url.replace(/^http/, 'ws'),
    wsConnectionParams: authorization ? { Authorization: authorization } : {},
  })(params, options);
};
const defaultQuery = `# The shop's GraphQL API. The book icon on the left
# opens the schema's documentation; Ctrl-Enter runs the
# operation under the cursor.

query Shop {
  products(pagination: { take: 5 }) {
    id name description price
  }
  accounts(pagination: { take: 5 }) {
    id name
    orders { id status totalPrice products { name quantity } }
  }
}

mutation CreateAccount {
  createAccount(account: { name: "Ada Lovelace" }) { id name }
}

# Pushes an order's every change until it is confirmed, rejected or cancelled.
subscription FollowOrder {
  orderUpdated(id: "an order's id") { id version status totalPrice rejectionReason }
}

# Cancels an order that is not final yet; its history tells the saga's steps.
mutation CancelOrder {
  cancelOrder(id: "an order's id") { id status stockReleasePending history { kind at detail } }
}
`;
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, { fetcher, defaultQuery, defaultEditorToolsVisibility: true }),
);
"#;

/// Scripts and styles from this origin only (GraphiQL's editors set inline styles; its fonts are data URLs), and
/// requests to this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

static ASSETS: [Asset; 4] = bundled!(
    "/playground",
    "playground",
    [
        ("graphiql", "PLAYGROUND_GRAPHIQL_VERSION", "graphiql.min.css", CSS),
        ("graphiql", "PLAYGROUND_GRAPHIQL_VERSION", "graphiql.min.js", JAVASCRIPT),
        ("react", "PLAYGROUND_REACT_VERSION", "react.production.min.js", JAVASCRIPT),
        ("react-dom", "PLAYGROUND_REACT_DOM_VERSION", "react-dom.production.min.js", JAVASCRIPT),
    ]
);

static PLAYGROUND: BundledPage = BundledPage {
    path: "/playground",
    html: PAGE,
    policy: CONTENT_SECURITY_POLICY,
    script_path: "/playground/mount.js",
    script: MOUNT,
    assets: &ASSETS,
};

/// The page, its mount script, and every bundled asset.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    PLAYGROUND.routes()
}
