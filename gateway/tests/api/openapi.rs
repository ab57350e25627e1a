//! A REST client for the tests that checks every answer against the OpenAPI document the gateway serves: the
//! operation must document the status, the content type must be the documented one, and the body must validate
//! against the documented schema (JSON Schema draft 2020-12, as OpenAPI 3.1 uses). A handler that answers
//! something its documentation does not say fails the test that called it.

use reqwest::{Method, RequestBuilder, header::HeaderMap};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// An answer, already checked against the document.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// A header's value, which must be there.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header in {self:#?}")).to_str().unwrap()
    }

    /// The problem's field names (`errors[].field`).
    pub(crate) fn fields(&self) -> Vec<&str> {
        self.body["errors"].as_array().map_or_else(Vec::new, |errors| {
            errors.iter().map(|error| error["field"].as_str().unwrap()).collect()
        })
    }
}

/// The REST API of a test gateway, and its OpenAPI document.
#[derive(Clone)]
pub(crate) struct Rest {
    http: reqwest::Client,
    base_url: String,
    pub(crate) document: Value,
    /// Sent as a bearer token with every request, when set.
    token: Option<String>,
}

impl Rest {
    pub(crate) async fn new(app: &TestApp) -> Self {
        let url = format!("{}/api/v1/openapi.json", app.base_url);
        let document: Value = app.http.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(document["openapi"], "3.1.0", "{document:#}");
        Self { http: app.http.clone(), base_url: app.base_url.clone(), document, token: None }
    }

    /// The same client, sending `token` as a bearer token.
    pub(crate) fn with_token(&self, token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..self.clone() }
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::POST, path).json(&body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    /// A request to build by hand (odd bodies, odd headers); send it with [`send`](Self::send).
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base_url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and checks its answer against the document.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Answer {
        let request = request.build().unwrap();
        let (method, path) = (request.method().as_str().to_lowercase(), request.url().path().to_owned());
        let response = self.http.execute(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        let answer = Answer { status, headers, body };
        self.check(&method, &path, &answer);
        answer
    }

    /// The documented response for `status` of the operation `method path`; for a path or method the document
    /// does not have, the problem-details response every such answer must be.
    fn documented(&self, method: &str, path: &str, status: u16) -> Value {
        let Some(operation) = self.operation(method, path) else {
            assert!(
                [404, 405].contains(&status),
                "{method} {path} is not in the document, yet answered {status}"
            );
            return json!({ "content": { "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" } } } });
        };
        let response = operation["responses"][status.to_string()].clone();
        assert!(
            !response.is_null(),
            "{method} {path} answered {status}, which its documentation does not list"
        );
        match response["$ref"].as_str() {
            Some(reference) => self.resolve(reference).clone(),
            None => response,
        }
    }

    /// The operation whose path template matches `path`.
    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let paths = self.document["paths"].as_object().unwrap();
        paths
            .iter()
            .find(|(template, _)| matches_template(template, path))
            .map(|(_, item)| &item[method])
            .filter(|operation| !operation.is_null())
    }

    fn resolve(&self, reference: &str) -> &Value {
        let pointer = reference.strip_prefix('#').expect("a local reference");
        self.document.pointer(pointer).unwrap_or_else(|| panic!("{reference} is not in the document"))
    }

    fn check(&self, method: &str, path: &str, answer: &Answer) {
        let documented = self.documented(method, path, answer.status);
        let Some(content) = documented["content"].as_object() else {
            assert!(
                answer.body.is_null(),
                "{method} {path} {}: a body where none is documented",
                answer.status
            );
            return;
        };
        let content_type = answer.header("content-type");
        let media_type = content_type.split(';').next().unwrap().trim();
        let schema = &content
            .get(media_type)
            .unwrap_or_else(|| panic!("{method} {path} {}: {media_type} is not documented", answer.status))["schema"];
        // The document's components travel with the schema, so its `#/components/...` references resolve.
        let mut schema = schema.clone();
        schema["components"] = self.document["components"].clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {path}: the documented schema does not compile: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(&answer.body).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {}: the body does not match the documented schema: {errors:#?}\n{:#}",
            answer.status,
            answer.body
        );
        for (name, header) in documented["headers"].as_object().into_iter().flatten() {
            if header["required"] == true {
                answer.header(name);
            }
        }
    }
}

/// Whether `path` is an instance of `template` (`/api/v1/account/{id}`).
pub(crate) fn matches_template(template: &str, path: &str) -> bool {
    let (template, path): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template.iter().zip(&path).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}
