//! The long-term store: `PUT`, `GET`, `DELETE /store/items` and
//! `POST /store/items/search`, kept in one ordered map so a namespace-prefix search
//! is one range scan.
//!
//! Shapes follow py: `PUT`/`DELETE` 204 (delete of an absent item too), a missing
//! item is 200 `null`, `GET` takes the namespace joined with dots, search items
//! carry `score: null`. Rule violations (dotted or empty labels, a non-object
//! value) are 422 `{"detail":...}` (py sends them as plain text). `ttl` (minutes)
//! is honoured and refreshed on `GET`; `index` is accepted and validated, and
//! `query` is ignored: no embedding index is configured here, as on a default
//! py server.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::error::{object_body, type_name, ApiError};
use crate::state::{now, AppState};
use crate::stats::Operation;

type Key = (Vec<String>, String);

struct Item {
    value: Map<String, Value>,
    created_at: String,
    updated_at: String,
    /// Set when the item was put with a `ttl`.
    ttl: Option<Duration>,
    expires_at: Option<Instant>,
}

impl Item {
    fn expired(&self, at: Instant) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    fn to_json(&self, (namespace, key): &Key) -> Value {
        json!({
            "namespace": namespace,
            "key": key,
            "value": self.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[derive(Default)]
pub struct Store {
    items: RwLock<BTreeMap<Key, Item>>,
}

impl Store {
    /// Live (unexpired) items.
    pub fn len(&self) -> usize {
        let at = Instant::now();
        self.items
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|i| !i.expired(at))
            .count()
    }

    fn put(&self, key: Key, value: Map<String, Value>, ttl: Option<Duration>) {
        let at = now();
        let expires_at = ttl.map(|t| Instant::now() + t);
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        let live_created = items
            .get(&key)
            .filter(|i| !i.expired(Instant::now()))
            .map(|i| i.created_at.clone());
        let created_at = live_created.unwrap_or_else(|| at.clone());
        items.insert(
            key,
            Item {
                value,
                created_at,
                updated_at: at,
                ttl,
                expires_at,
            },
        );
    }

    fn get(&self, key: &Key) -> Option<Value> {
        let at = Instant::now();
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        let item = items.get(key).filter(|i| !i.expired(at))?;
        if item.ttl.is_none() {
            return Some(item.to_json(key));
        }
        drop(items);
        let mut items = self.items.write().unwrap_or_else(|e| e.into_inner());
        let item = items.get_mut(key).filter(|i| !i.expired(at))?;
        item.expires_at = item.ttl.map(|t| at + t);
        Some(item.to_json(key))
    }

    fn delete(&self, key: &Key) {
        self.items
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn search(
        &self,
        prefix: &[String],
        filter: &Map<String, Value>,
        limit: usize,
        offset: usize,
    ) -> Vec<Value> {
        let at = Instant::now();
        let items = self.items.read().unwrap_or_else(|e| e.into_inner());
        let start: Key = (prefix.to_vec(), String::new());
        items
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(|((namespace, _), _)| namespace.starts_with(prefix))
            .filter(|(_, item)| !item.expired(at))
            .filter(|(_, item)| {
                filter
                    .iter()
                    .all(|(field, want)| item.value.get(field) == Some(want))
            })
            .skip(offset)
            .take(limit)
            .map(|(key, item)| {
                let mut out = item.to_json(key);
                out["score"] = Value::Null;
                out
            })
            .collect()
    }
}

/// A namespace: a non-empty list of non-empty labels without `.`.
fn namespace(
    value: Option<&Value>,
    field: &str,
    allow_empty: bool,
) -> Result<Vec<String>, ApiError> {
    let list = match value {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) if allow_empty => return Ok(Vec::new()),
        None | Some(Value::Null) => {
            return Err(ApiError::Unprocessable(format!(
                "Field '{field}' is required"
            )))
        }
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "Field '{field}' must be a list of strings, got {}",
                type_name(other)
            )))
        }
    };
    if list.is_empty() && !allow_empty {
        return Err(ApiError::Unprocessable("Namespace cannot be empty.".into()));
    }
    list.iter().map(label).collect()
}

fn label(value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) if !s.is_empty() && !s.contains('.') => Ok(s.clone()),
        Value::String(s) => Err(ApiError::Unprocessable(format!(
            "Namespace label '{s}' must be a non-empty string without periods"
        ))),
        other => Err(ApiError::Unprocessable(format!(
            "Namespace labels must be strings, got {}",
            type_name(other)
        ))),
    }
}

fn key(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("key") {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        Some(Value::String(_)) => Err(ApiError::Unprocessable(
            "Field 'key' must not be empty".into(),
        )),
        _ => Err(ApiError::Unprocessable(
            "Field 'key' is required and must be a string".into(),
        )),
    }
}

/// `ttl` in minutes: absent/null → none; positive number → that long.
fn ttl(value: Option<&Value>) -> Result<Option<Duration>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(minutes) if minutes > 0.0 && minutes.is_finite() && minutes < 1e9 => {
                Ok(Some(Duration::from_secs_f64(minutes * 60.0)))
            }
            _ => Err(ApiError::Unprocessable(format!(
                "'ttl' must be a positive number of minutes, got {n}"
            ))),
        },
        Some(other) => Err(ApiError::Unprocessable(format!(
            "'ttl' must be a number of minutes, got {}",
            type_name(other)
        ))),
    }
}

fn check_index(value: Option<&Value>) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Array(fields)) if fields.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(ApiError::Unprocessable(
            "'index' must be false or a list of field paths".into(),
        )),
    }
}

fn count(body: &Map<String, Value>, field: &str, default: usize) -> Result<usize, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "'{field}' must be a non-negative integer, got {v}"
                ))
            }),
    }
}

/// `PUT /store/items` → 204
pub async fn put(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    state.stats.hit(Operation::StorePut);
    let body = object_body(body)?;
    let namespace = namespace(body.get("namespace"), "namespace", false)?;
    let key = key(&body)?;
    let value = match body.get("value") {
        Some(Value::Object(value)) => value.clone(),
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "'value' must be a JSON object, got {}",
                type_name(other)
            )))
        }
        None => {
            return Err(ApiError::Unprocessable(
                "Field 'value' is required (a JSON object)".into(),
            ))
        }
    };
    check_index(body.get("index"))?;
    let ttl = ttl(body.get("ttl"))?;
    state.store.put((namespace, key), value, ttl);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /store/items?namespace=a.b&key=k` → the item, or `null`
pub async fn get(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::StoreGet);
    let Query(params) = query
        .map_err(|e| ApiError::Unprocessable(format!("Invalid query string: {}", e.body_text())))?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let namespace = param("namespace").ok_or_else(|| {
        ApiError::Unprocessable(
            "Query parameter 'namespace' is required (labels joined with '.')".into(),
        )
    })?;
    let key = param("key")
        .ok_or_else(|| ApiError::Unprocessable("Query parameter 'key' is required".into()))?;
    let labels = namespace
        .split('.')
        .map(|l| label(&Value::String(l.to_owned())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        state
            .store
            .get(&(labels, key.to_owned()))
            .unwrap_or(Value::Null),
    ))
}

/// `POST /store/items/search` → `{"items":[...]}`
pub async fn search(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    state.stats.hit(Operation::StoreSearch);
    let body = object_body(body)?;
    let prefix = namespace(body.get("namespace_prefix"), "namespace_prefix", true)?;
    let filter = match body.get("filter") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(filter)) => filter.clone(),
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "'filter' must be an object, got {}",
                type_name(other)
            )))
        }
    };
    let limit = count(&body, "limit", 10)?;
    let offset = count(&body, "offset", 0)?;
    let items = state.store.search(&prefix, &filter, limit, offset);
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /store/items` with body `{"namespace","key"}` → 204
pub async fn delete(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    state.stats.hit(Operation::StoreDelete);
    let body = object_body(body)?;
    let namespace = namespace(body.get("namespace"), "namespace", false)?;
    let key = key(&body)?;
    state.store.delete(&(namespace, key));
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_search_filter_and_paging() {
        let store = Store::default();
        for (labels, key, n) in [
            (&["a", "b"][..], "k1", 1),
            (&["a", "b"], "k2", 2),
            (&["a", "c"], "k3", 1),
            (&["ab"], "k4", 1),
        ] {
            let value = json!({"n": n}).as_object().unwrap().clone();
            store.put((ns(labels), key.into()), value, None);
        }
        let keys = |items: Vec<Value>| {
            items
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let none = Map::new();
        assert_eq!(
            keys(store.search(&ns(&["a"]), &none, 10, 0)),
            ["k1", "k2", "k3"]
        );
        assert_eq!(
            keys(store.search(&ns(&["a", "b"]), &none, 10, 0)),
            ["k1", "k2"]
        );
        assert_eq!(keys(store.search(&[], &none, 10, 0)).len(), 4);
        assert_eq!(keys(store.search(&ns(&["a"]), &none, 1, 1)), ["k2"]);
        let filter = json!({"n": 1}).as_object().unwrap().clone();
        assert_eq!(
            keys(store.search(&ns(&["a"]), &filter, 10, 0)),
            ["k1", "k3"]
        );
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn namespace_rules() {
        assert!(namespace(Some(&json!(["a", "b"])), "namespace", false).is_ok());
        for bad in [
            json!([]),
            json!(["a.b"]),
            json!([""]),
            json!("a"),
            json!([1]),
        ] {
            assert!(namespace(Some(&bad), "namespace", false).is_err(), "{bad}");
        }
        assert!(namespace(None, "namespace_prefix", true)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn ttl_expires() {
        let store = Store::default();
        let key = (ns(&["t"]), "k".to_owned());
        store.put(key.clone(), Map::new(), Some(Duration::ZERO));
        assert!(store.get(&key).is_none());
        assert_eq!(store.len(), 0);
        assert!(ttl(Some(&json!(-1))).is_err());
        assert_eq!(ttl(Some(&json!(1))).unwrap(), Some(Duration::from_secs(60)));
    }
}
