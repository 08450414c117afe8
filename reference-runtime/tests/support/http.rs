//! `Http`: a small JSON client over reqwest (no proxy), and `Answer` with SSE
//! parsing for stream bodies.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub token: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `(event, data)` pairs of an SSE body.
    pub fn events(&self) -> Vec<(String, Value)> {
        let text = self.text();
        text.split("\n\n")
            .filter(|block| !block.trim().is_empty())
            .map(|block| {
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                (
                    event,
                    serde_json::from_str(&data)
                        .unwrap_or_else(|e| panic!("bad data {data:?}: {e}")),
                )
            })
            .collect()
    }

    pub fn event_names(&self) -> Vec<String> {
        self.events().into_iter().map(|(e, _)| e).collect()
    }
}

impl Http {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            client,
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            client: self.client.clone(),
            token: Some(token.to_owned()),
        }
    }

    pub async fn send(&self, method: reqwest::Method, url: &str, body: Option<Vec<u8>>) -> Answer {
        let mut request = self.client.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.send(reqwest::Method::GET, url, None).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            url,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn put(&self, url: &str, body: &Value) -> Answer {
        self.send(
            reqwest::Method::PUT,
            url,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, url: &str, body: Option<&Value>) -> Answer {
        self.send(
            reqwest::Method::DELETE,
            url,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    pub async fn raw_post(&self, url: &str, body: &str) -> Answer {
        self.send(reqwest::Method::POST, url, Some(body.as_bytes().to_vec()))
            .await
    }
}

pub fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: body {}", answer.text());
}

pub fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}
