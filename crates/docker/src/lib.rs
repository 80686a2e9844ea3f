//! The container engine: finding it, connecting to it, and reading what a
//! container is. Both the Docker source (`collect`) and healing (`heal`)
//! talk to the engine; this is the one place that knows how to reach it and
//! how its answers map onto [`ContainerInfo`], so neither depends on the
//! other.

use std::collections::HashMap;
use std::time::Duration;

use aegis_core::container::{ContainerHealth, ContainerInfo, HealthcheckSpec, RestartPolicy};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
pub use bollard::Docker;

/// Why the engine could not be used: it is not there (no socket, not
/// answering). Kept apart from an engine that answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Which engine answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Docker (or anything else speaking its API).
    Docker,
    /// Podman's Docker-compatible service.
    Podman,
}

impl Flavour {
    /// Its name, for messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Docker => "Docker",
            Self::Podman => "Podman",
        }
    }
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The API client.
    pub client: Docker,
    /// Docker or Podman.
    pub flavour: Flavour,
    /// The engine's version.
    pub version: String,
    /// Where it answered (`unix:///run/podman/podman.sock`...).
    pub address: String,
}

impl Engine {
    /// `Podman 4.3.1 at unix:///run/podman/podman.sock`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}",
            self.flavour.as_str(),
            self.version,
            self.address
        )
    }
}

/// Docker's default socket.
pub const DOCKER_SOCKET: &str = "unix:///var/run/docker.sock";
/// Podman's rootful socket.
pub const PODMAN_SOCKET: &str = "unix:///run/podman/podman.sock";

/// Where an engine is looked for, in order: `host` when configured (only
/// it); else `DOCKER_HOST` (only it); else Docker's socket, then Podman's
/// rootful one, then the rootless one under `XDG_RUNTIME_DIR`.
pub fn candidates(host: Option<&str>) -> Vec<String> {
    if let Some(h) = host.map(str::trim).filter(|h| !h.is_empty()) {
        return vec![h.to_string()];
    }
    if let Some(h) = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return vec![h.trim().to_string()];
    }
    let mut out = vec![DOCKER_SOCKET.to_string(), PODMAN_SOCKET.to_string()];
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        let dir = std::path::PathBuf::from(dir);
        out.push(format!(
            "unix://{}",
            dir.join("podman/podman.sock").display()
        ));
    }
    out
}

fn client_for(address: &str) -> Result<Docker, String> {
    if let Some(why) = aegis_core::container::address_problem(address) {
        return Err(why);
    }
    let made = if let Some(path) = address.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err("no such socket".into());
        }
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(address, 120, bollard::API_DEFAULT_VERSION)
    };
    made.map_err(|e| format!("no client: {e}"))
}

async fn try_connect(address: &str) -> Result<Engine, String> {
    let client = client_for(address)?;
    let client = client
        .negotiate_version()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    client
        .ping()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let version = client
        .version()
        .await
        .map_err(|e| format!("no version: {e}"))?;
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"));
    Ok(Engine {
        client,
        flavour: if podman {
            Flavour::Podman
        } else {
            Flavour::Docker
        },
        version: version
            .version
            .unwrap_or_else(|| "(unknown version)".into()),
        address: address.to_string(),
    })
}

/// Connects to the first engine of [`candidates`] that answers, and agrees
/// on an API version; says what each one did when none does.
pub async fn connect(host: Option<&str>) -> Result<Engine, Unavailable> {
    let mut tried = Vec::new();
    for address in candidates(host) {
        match try_connect(&address).await {
            Ok(engine) => return Ok(engine),
            Err(why) => tried.push(format!("{address}: {why}")),
        }
    }
    Err(Unavailable(format!(
        "no container engine answered ({})",
        tried.join("; ")
    )))
}

/// Runs the health check of container `id` once through Podman's own API
/// (`GET /libpod/containers/{id}/healthcheck`), which records the result
/// as the engine's own: for a Podman whose timers do not run them (no
/// systemd). Waits at most `timeout`.
pub async fn run_health_check(
    engine: &Engine,
    id: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let path = format!("/v4.0.0/libpod/containers/{id}/healthcheck");
    let answer = tokio::time::timeout(timeout, raw_get(&engine.address, &path))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))??;
    match answer {
        (200, _) => Ok(()),
        (status, body) => Err(format!(
            "the engine answered {status}: {}",
            body.trim().chars().take(300).collect::<String>()
        )),
    }
}

/// One `GET` on the engine's socket, outside the Docker API client (which
/// knows only Docker's routes): the status and the body.
async fn raw_get(address: &str, path: &str) -> Result<(u16, String), String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n");
    let connecting = |e: std::io::Error| format!("connecting to {address}: {e}");
    let reply = if let Some(socket) = address.strip_prefix("unix://") {
        let s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(connecting)?;
        exchange(s, &request).await?
    } else {
        let host = address
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or(address);
        let s = tokio::net::TcpStream::connect(host)
            .await
            .map_err(connecting)?;
        exchange(s, &request).await?
    };
    parse_reply(&reply)
}

/// Sends `request` and reads the reply to its end (at most 1 MiB).
async fn exchange<S>(mut s: S, request: &str) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

/// The status and body of an HTTP/1.1 reply read to its end.
fn parse_reply(reply: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "the engine's reply has no end of headers".to_string())?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "the engine's reply has no status line: {:?}",
                head.lines().next().unwrap_or("")
            )
        })?;
    Ok((status, body.to_string()))
}

/// What the engine's inspection says of a container.
pub fn info_of(id: &str, c: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.as_ref();
    ContainerInfo {
        id: c.id.clone().unwrap_or_else(|| id.to_string()),
        name: c
            .name
            .as_deref()
            .unwrap_or(id)
            .trim_start_matches('/')
            .to_string(),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".to_string()),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .and_then(|h| ContainerHealth::parse(h.as_ref())),
        restart_count: c.restart_count.unwrap_or(0),
        exit_code: state.and_then(|s| s.exit_code),
        image: c
            .config
            .as_ref()
            .and_then(|cfg| cfg.image.clone())
            .unwrap_or_default(),
        restart_policy: c
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| {
                let name = p.name.map(|n| n.to_string()).unwrap_or_default();
                (!name.is_empty() && name != "no").then(|| RestartPolicy {
                    name,
                    max_retries: p.maximum_retry_count.unwrap_or(0),
                })
            }),
        network_mode: c.host_config.as_ref().and_then(|h| h.network_mode.clone()),
        started_at_ms: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(rfc3339_ms),
        healthcheck: c
            .config
            .as_ref()
            .and_then(|cfg| cfg.healthcheck.as_ref())
            .filter(|h| {
                h.test
                    .as_ref()
                    .and_then(|t| t.first())
                    .is_some_and(|first| first != "NONE")
            })
            .map(|h| {
                let ms = |ns: Option<i64>| ns.filter(|n| *n > 0).map(|n| n / 1_000_000);
                HealthcheckSpec {
                    interval_ms: ms(h.interval),
                    timeout_ms: ms(h.timeout),
                    start_period_ms: ms(h.start_period),
                    retries: h.retries.filter(|r| *r > 0),
                }
            }),
        health_checked_ms: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.log.as_ref())
            .and_then(|log| {
                log.iter()
                    .filter_map(|r| r.end.as_deref().and_then(rfc3339_ms))
                    .max()
            }),
        labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
    }
}

/// An RFC 3339 time as Unix ms (`None` for the zero time engines use for
/// "never").
fn rfc3339_ms(t: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .filter(|ms| *ms > 0)
}

/// Inspects one container; `Ok(None)` when it does not exist.
pub async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<Option<ContainerInfo>, bollard::errors::Error> {
    match docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(c) => Ok(Some(info_of(id, c))),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Time allowed to one container's inspection during a listing. The engine
/// holds a container while it stops or restarts it, for seconds: a host
/// restarting many containers must not keep the whole list (and the source
/// it feeds) waiting that long for each.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Every container (running or not), at most `max`, inspected, a few at
/// once. A container whose inspection fails or takes longer than
/// `INSPECT_TIMEOUT` keeps what `previous` knew of it, or else what the
/// list itself says (its state, health, name, image and labels, without a
/// restart count or policy): it is never dropped from the view for a slow
/// answer.
pub async fn list(
    docker: &Docker,
    max: usize,
    previous: &[ContainerInfo],
) -> Result<Vec<ContainerInfo>, String> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing containers: {e}"))?;
    let summaries: Vec<bollard::models::ContainerSummary> = list
        .into_iter()
        .filter(|s| s.id.is_some())
        .take(max)
        .collect();
    use futures_util::StreamExt;
    let found: Vec<Option<ContainerInfo>> = futures_util::stream::iter(summaries)
        .map(|summary| async move {
            let id = summary.id.clone().unwrap_or_default();
            match tokio::time::timeout(INSPECT_TIMEOUT, inspect(docker, &id)).await {
                Ok(Ok(found)) => found,
                // A container removed between the list and the inspect is
                // simply gone; one that is slow or failed to answer is not.
                Ok(Err(_)) | Err(_) => {
                    let listed = info_of_summary(&summary);
                    // What the list says now beats what was known.
                    Some(match previous.iter().find(|c| c.id == id) {
                        Some(known) => ContainerInfo {
                            state: listed.state,
                            health: listed.health.or(known.health),
                            ..known.clone()
                        },
                        None => listed,
                    })
                }
            }
        })
        .buffered(8)
        .collect()
        .await;
    Ok(found.into_iter().flatten().collect())
}

/// What one entry of the container list says: enough to watch the
/// container until an inspection answers.
pub fn info_of_summary(s: &bollard::models::ContainerSummary) -> ContainerInfo {
    let id = s.id.clone().unwrap_or_default();
    let state = s
        .state
        .map(|st| st.to_string())
        .filter(|st| !st.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    // Newer engines give the health apart; older ones only in the status
    // text: `Up 5 minutes (healthy)`, `Up 3 seconds (health: starting)`.
    let health = s
        .health
        .as_ref()
        .and_then(|h| h.status)
        .and_then(|h| ContainerHealth::parse(h.as_ref()))
        .or_else(|| {
            let status = s.status.as_deref()?;
            let inside = status.rsplit_once('(')?.1.strip_suffix(')')?;
            ContainerHealth::parse(inside.trim_start_matches("health:"))
        });
    ContainerInfo {
        name: s
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_string()),
        id,
        state,
        health,
        restart_count: 0,
        exit_code: None,
        image: s.image.clone().unwrap_or_default(),
        labels: s.labels.clone().unwrap_or_default(),
        restart_policy: None,
        network_mode: s.host_config.as_ref().and_then(|h| h.network_mode.clone()),
        started_at_ms: None,
        healthcheck: None,
        health_checked_ms: None,
    }
}

/// The labels of an event's actor, without the attributes the engine adds
/// beside them (`name`, `image`, `exitCode`, `signal`; Podman's
/// `containerExitCode`, `podId`).
pub fn labels_of_event(attributes: &HashMap<String, String>) -> HashMap<String, String> {
    let mut labels = attributes.clone();
    for k in [
        "name",
        "image",
        "exitCode",
        "signal",
        "containerExitCode",
        "podId",
    ] {
        labels.remove(k);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_host_is_the_only_place_looked_at() {
        assert_eq!(
            candidates(Some("unix:///run/podman/podman.sock")),
            vec!["unix:///run/podman/podman.sock".to_string()]
        );
        // Without one (and without DOCKER_HOST, which a test cannot unset
        // safely), Docker's socket comes first and Podman's after it.
        if std::env::var_os("DOCKER_HOST").is_none() {
            let found = candidates(None);
            assert_eq!(found[0], DOCKER_SOCKET);
            assert_eq!(found[1], PODMAN_SOCKET);
        }
    }

    #[test]
    fn a_list_entry_says_state_health_name_and_labels() {
        let entry = |status: &str| -> bollard::models::ContainerSummary {
            serde_json::from_value(serde_json::json!({
                "Id": "abc123",
                "Names": ["/web"],
                "Image": "nginx",
                "State": "running",
                "Status": status,
                "Labels": {"aegis.autoheal": "true"},
                "HostConfig": {"NetworkMode": "container:vpn"}
            }))
            .expect("a list entry")
        };
        let info = info_of_summary(&entry("Up 5 minutes (unhealthy)"));
        assert_eq!(
            (info.id.as_str(), info.name.as_str(), info.state.as_str()),
            ("abc123", "web", "running")
        );
        assert_eq!(info.health, Some(ContainerHealth::Unhealthy));
        assert_eq!(
            info.labels.get("aegis.autoheal").map(String::as_str),
            Some("true")
        );
        assert_eq!(info.network_mode.as_deref(), Some("container:vpn"));
        assert_eq!(
            info_of_summary(&entry("Up 3 seconds (health: starting)")).health,
            Some(ContainerHealth::Starting)
        );
        assert_eq!(info_of_summary(&entry("Up 2 hours")).health, None);
        assert_eq!(
            info_of_summary(&entry("Exited (1) 2 minutes ago")).health,
            None
        );
    }

    #[test]
    fn replies_are_read_for_their_status_and_body() {
        assert_eq!(
            parse_reply(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Status\":\"healthy\"}"),
            Ok((200, "{\"Status\":\"healthy\"}".to_string()))
        );
        assert_eq!(
            parse_reply(b"HTTP/1.1 409 Conflict\r\n\r\ncontainer is not running"),
            Ok((409, "container is not running".to_string()))
        );
        assert!(parse_reply(b"garbage").is_err());
        assert!(parse_reply(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn a_missing_socket_is_said_to_be_missing() {
        let err = connect(Some("unix:///nonexistent/engine.sock"))
            .await
            .expect_err("no engine there");
        assert!(err.0.contains("no such socket"), "{err}");
        let err = connect(Some("docker.sock"))
            .await
            .expect_err("not an address");
        assert!(err.0.contains("not an engine address"), "{err}");
    }
}
