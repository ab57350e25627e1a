//! A GraphQL client for tests that speak to the gateway over real HTTP: the gateway's own tests and the system
//! tests of the whole shop.

use serde_json::{Value, json};

/// Sends GraphQL requests to one gateway.
#[derive(Debug, Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    endpoint: String,
    /// Sent as `Authorization: Bearer <token>` with every request, when set.
    token: Option<String>,
}

impl GraphqlClient {
    /// A client of the gateway at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Self {
        Self { http: reqwest::Client::new(), endpoint: format!("{base_url}/graphql"), token: None }
    }

    /// The same client, sending `token` as a bearer token with every request.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), ..self.clone() }
    }

    /// POSTs a GraphQL request and returns the whole response body (`data` and `errors`).
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.try_graphql(query, variables)
            .await
            .expect("Failed to reach the gateway, or it answered something that is not JSON")
    }

    /// Like [`graphql`](Self::graphql), but says when the gateway cannot be reached (not up yet, or gone) instead of
    /// failing the test.
    pub async fn try_graphql(&self, query: &str, variables: Value) -> Result<Value, reqwest::Error> {
        let mut request =
            self.http.post(&self.endpoint).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await?.json().await
    }

    /// Like [`graphql`](Self::graphql), but fails the test on any GraphQL error and returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(response.get("errors").is_none(), "unexpected errors: {response:#}");
        response["data"].clone()
    }

    /// Opens an account; returns its id.
    pub async fn create_account(&self, name: &str) -> String {
        let query = "mutation($name: String!) { createAccount(account: {name: $name}) { id } }";
        let data = self.data(query, json!({ "name": name })).await;
        data["createAccount"]["id"].as_str().expect("an account id").to_owned()
    }

    /// Adds a product; returns its id.
    pub async fn create_product(&self, name: &str, description: &str, price: f64) -> String {
        let query = "mutation($product: ProductInput!) { createProduct(product: $product) { id } }";
        let product = json!({ "name": name, "description": description, "price": price });
        let data = self.data(query, json!({ "product": product })).await;
        data["createProduct"]["id"].as_str().expect("a product id").to_owned()
    }

    /// Places an order of `products` (id, quantity); returns it as `createOrder` answered.
    pub async fn create_order(&self, account_id: &str, products: &[(&str, i32)]) -> Value {
        let query = "mutation($order: OrderInput!) {
            createOrder(order: $order) { id status totalPrice products { id name price quantity } }
        }";
        let products: Vec<Value> =
            products.iter().map(|(id, quantity)| json!({ "id": id, "quantity": quantity })).collect();
        let order = json!({ "accountId": account_id, "products": products });
        self.data(query, json!({ "order": order })).await["createOrder"].clone()
    }
}
