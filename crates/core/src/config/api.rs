//! `[api]`: the HTTP API and dashboard.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Problems;

/// The API's default address: loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9477);

/// `[api]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the API and dashboard listen on.
    pub listen: SocketAddr,
    /// Bearer token for state-changing requests (and reads, if
    /// `read_requires_token`). Required to listen on a non-loopback address.
    pub token: Option<String>,
    /// Whether reading also needs the token.
    pub read_requires_token: bool,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            token: None,
            read_requires_token: false,
            max_connections: 256,
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        if let Some(token) = &self.token {
            p.check(token.len() >= 16, "api.token", || {
                "must be at least 16 characters long".to_string()
            });
            p.check(
                token.chars().all(|c| c.is_ascii_graphic()),
                "api.token",
                || "must be printable ASCII without spaces".to_string(),
            );
        }
        p.check(
            self.listen.ip().is_loopback() || self.token.is_some(),
            "api.listen",
            || {
                format!(
                    "{} is not a loopback address; set api.token before exposing the API",
                    self.listen
                )
            },
        );
        p.check(
            !self.read_requires_token || self.token.is_some(),
            "api.read_requires_token",
            || "is true but api.token is not set".to_string(),
        );
        p.range("api.max_connections", self.max_connections, 1, 65_536);
    }
}
