//! `[target]`: where the load goes and the labels that name its results.
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// At most this many source addresses (each gives its own ~28,000 ephemeral ports).
pub const MAX_SOURCE_ADDRS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Base URL of the Agent Protocol server.
    #[serde(default = "default_url")]
    pub url: String,
    /// Label for results and metadata (`ts`, `python`, `reference`).
    #[serde(default = "default_runtime")]
    pub runtime: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Which LLM sits behind the target (`mock` for the mock LLM).
    #[serde(default = "default_llm")]
    pub llm: String,
    /// Resource tier label (`xs`, `s`, `m`, `l`), when the run is part of a sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Local addresses the worker's connections leave from, round-robin (e.g.
    /// `["127.0.0.2", "127.0.0.3"]`): the kernel has about 28,000 ephemeral ports per
    /// source address, so tens of thousands of open streams to one target need several.
    /// Empty: the kernel picks. Plain `http://` targets only (the TLS path ignores it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_addrs: Vec<IpAddr>,
}

/// The host of an `http(s)://host[:port]/…` URL, without brackets.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}

impl TargetConfig {
    /// `source_addrs`: a loopback target is reached from loopback sources only, any other
    /// target from non-loopback ones; an IP target's family must match; no duplicates,
    /// no unspecified or multicast address, at most [`MAX_SOURCE_ADDRS`].
    pub(super) fn validate_source_addrs(&self, errors: &mut Vec<String>) {
        if self.source_addrs.is_empty() {
            return;
        }
        if self.source_addrs.len() > MAX_SOURCE_ADDRS {
            errors.push(format!(
                "target.source_addrs: {} addresses; give at most {MAX_SOURCE_ADDRS}",
                self.source_addrs.len()
            ));
        }
        let host = url_host(&self.url);
        let target_ip = host.and_then(|h| h.parse::<IpAddr>().ok());
        let loopback_target =
            host == Some("localhost") || target_ip.is_some_and(|ip| ip.is_loopback());
        for (i, a) in self.source_addrs.iter().enumerate() {
            let field = format!("target.source_addrs[{i}]");
            if a.is_unspecified() || a.is_multicast() {
                errors.push(format!(
                    "{field}: {a} is not a local unicast address; use e.g. 127.0.0.2"
                ));
            } else if loopback_target && !a.is_loopback() {
                errors.push(format!("{field}: {a} is not a loopback address but the target {} is; use 127.0.0.2, 127.0.0.3 …", self.url));
            } else if !loopback_target && a.is_loopback() {
                errors.push(format!("{field}: {a} is a loopback address, which cannot reach the target {}; give addresses of this host's network interfaces", self.url));
            }
            if let Some(t) = target_ip {
                if t.is_ipv4() != a.is_ipv4() {
                    errors.push(format!(
                        "{field}: {a} is not of the target's address family ({t})"
                    ));
                }
            }
            if self.source_addrs[..i].contains(a) {
                errors.push(format!("{field}: {a} is given twice"));
            }
        }
    }
}

fn default_url() -> String {
    "http://127.0.0.1:9000".into()
}
fn default_runtime() -> String {
    "reference".into()
}
fn default_version() -> String {
    "0.1.0".into()
}
fn default_llm() -> String {
    "mock".into()
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            url: default_url(),
            runtime: default_runtime(),
            version: default_version(),
            llm: default_llm(),
            tier: None,
            source_addrs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(url: &str, addrs: &[&str]) -> Vec<String> {
        let t = TargetConfig {
            url: url.into(),
            source_addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ..Default::default()
        };
        let mut errors = Vec::new();
        t.validate_source_addrs(&mut errors);
        errors
    }

    #[test]
    fn source_addrs_must_fit_the_target() {
        assert!(problems("http://127.0.0.1:9001", &[]).is_empty());
        assert!(problems("http://127.0.0.1:9001", &["127.0.0.2", "127.0.0.3"]).is_empty());
        assert!(problems("http://localhost:9001/x", &["127.0.0.2"]).is_empty());
        assert!(problems("http://[::1]:9001", &["::1"]).is_empty());
        assert!(problems("http://10.0.0.5:80", &["10.0.0.7", "10.0.0.8"]).is_empty());
        let e = problems("http://127.0.0.1:9001", &["10.0.0.7"]);
        assert!(
            e[0].contains("source_addrs[0]") && e[0].contains("not a loopback"),
            "{e:?}"
        );
        let e = problems("http://10.0.0.5", &["127.0.0.2"]);
        assert!(e[0].contains("cannot reach"), "{e:?}");
        let e = problems("http://10.0.0.5", &["fd00::7"]);
        assert!(e[0].contains("address family"), "{e:?}");
        let e = problems("http://127.0.0.1", &["127.0.0.2", "0.0.0.0", "127.0.0.2"]);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("source_addrs[1]") && e[1].contains("twice"),
            "{e:?}"
        );
    }

    #[test]
    fn source_addrs_parse_from_toml_and_round_trip() {
        let t: TargetConfig =
            toml::from_str("url = \"http://127.0.0.1:1\"\nsource_addrs = [\"127.0.0.2\", \"::1\"]")
                .unwrap();
        assert_eq!(t.source_addrs.len(), 2);
        let back: TargetConfig = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let bad = toml::from_str::<TargetConfig>("source_addrs = [\"127.0.0.300\"]").unwrap_err();
        assert!(bad.to_string().contains("source_addrs"), "{bad}");
    }
}
