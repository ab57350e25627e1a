//! GraphQL over HTTP to the gateway, and what counts as a failed operation: every failure is named by one code,
//! the unit the report counts errors in.

use std::{fmt, time::Duration};

use serde_json::{Value, json};

/// Why an operation failed, as one code: the GraphQL error's `extensions.code` (`UNAUTHENTICATED`,
/// `TOO_MANY_REQUESTS`, …), `HTTP_<status>` for an answer without one, `TRANSPORT_<kind>` when no answer came,
/// or a code of the generator's own for an answer that does not say what it should (`MISSING_ORDER`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub(crate) String);

impl Failure {
    pub(crate) fn new(code: impl Into<String>) -> Self {
        Self(code.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sends GraphQL requests to one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    endpoint: String,
}

impl Gateway {
    pub(crate) fn new(endpoint: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        // One pooled client for every simulated customer: what a fleet of browsers costs the shop in connections
        // is not what this measures, and a connection per request would measure the generator's TCP handshakes.
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { http, endpoint: endpoint.to_owned() })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// POSTs one operation; its `data`, or the failure.
    pub(crate) async fn call(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> Result<Value, Failure> {
        let mut request =
            self.http.post(&self.endpoint).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|error| transport(&error))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|error| transport(&error))?;
        classify(status, &body)
    }
}

/// The code of a request that got no (whole) answer.
fn transport(error: &reqwest::Error) -> Failure {
    let kind = if error.is_timeout() {
        "TIMEOUT"
    } else if error.is_connect() {
        "CONNECT"
    } else if error.is_body() || error.is_decode() {
        "BODY"
    } else {
        "REQUEST"
    };
    Failure::new(format!("TRANSPORT_{kind}"))
}

/// An HTTP answer as `data`, or the failure it reports. A GraphQL error's code wins over the HTTP status (the
/// gateway answers `401 UNAUTHENTICATED`, `429 TOO_MANY_REQUESTS` with both); an operation with several errors
/// counts once, by its first.
pub(crate) fn classify(status: u16, body: &[u8]) -> Result<Value, Failure> {
    let http_failure = || Failure::new(format!("HTTP_{status}"));
    let Ok(mut answer) = serde_json::from_slice::<Value>(body) else {
        return Err(if (200..300).contains(&status) { Failure::new("INVALID_JSON") } else { http_failure() });
    };
    if let Some(first) = answer["errors"].as_array().and_then(|errors| errors.first()) {
        let code = first["extensions"]["code"].as_str().unwrap_or("GRAPHQL_ERROR");
        return Err(Failure::new(code));
    }
    if !(200..300).contains(&status) {
        return Err(http_failure());
    }
    match answer.get_mut("data").map(Value::take) {
        Some(data @ Value::Object(_)) => Ok(data),
        _ => Err(Failure::new("NO_DATA")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graphql_error_is_counted_by_its_extensions_code_whatever_the_status() {
        let body = br#"{"errors":[{"message":"sign in","extensions":{"code":"UNAUTHENTICATED"}},
            {"message":"other","extensions":{"code":"INTERNAL"}}]}"#;

        assert_eq!(classify(401, body), Err(Failure::new("UNAUTHENTICATED")));
        assert_eq!(classify(200, body), Err(Failure::new("UNAUTHENTICATED")));
        assert_eq!(
            classify(200, br#"{"errors":[{"message":"?"}],"data":null}"#),
            Err(Failure::new("GRAPHQL_ERROR"))
        );
    }

    #[test]
    fn an_answer_without_a_graphql_error_is_counted_by_its_status_or_its_shape() {
        assert_eq!(classify(503, b"busy"), Err(Failure::new("HTTP_503")));
        assert_eq!(classify(502, br#"{"data":{"x":1}}"#), Err(Failure::new("HTTP_502")));
        assert_eq!(classify(200, b"<html>"), Err(Failure::new("INVALID_JSON")));
        assert_eq!(classify(200, br#"{"data":null}"#), Err(Failure::new("NO_DATA")));
        assert_eq!(classify(200, br#"{"data":{"order":null}}"#), Ok(json!({ "order": null })));
    }
}
