//! What the agent can do about a problem: the actions and their typed
//! parameters, as written in the configuration and the API. The `heal`
//! crate executes them; here they are plain data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret in the configuration: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Flush a Redis database through the Redis protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFlush {
    /// `host:port`.
    pub address: String,
    /// Database to flush (FLUSHDB); ignored with `all`.
    #[serde(default)]
    pub db: u32,
    /// FLUSHALL instead of FLUSHDB.
    #[serde(default)]
    pub all: bool,
    /// ACL user (Redis 6+); with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for AUTH.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// Flush Memcached (`flush_all`) through its protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemcachedFlush {
    /// `host:port`.
    pub address: String,
}

/// Run a configured command: an argv, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCommand {
    /// Program and arguments, e.g. `["/usr/local/bin/rotate-logs", "--now"]`.
    pub argv: Vec<String>,
}

/// Restart a systemd unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRestart {
    /// The unit, e.g. `nginx.service`.
    pub unit: String,
}

/// Signals an action may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
    /// SIGHUP.
    Hup,
    /// SIGINT.
    Int,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
}

/// Signal one process, identified by PID and start time. In a rule or a
/// manual action, `pid = 0` means "the watched process(es) of the incident's
/// target" (a `[[processes]]` name), found when the action runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalProcess {
    /// Process id.
    pub pid: i32,
    /// Its start time (field 22 of `/proc/PID/stat`, clock ticks after
    /// boot) as seen when the process was chosen.
    pub start_time: u64,
    /// The signal.
    pub signal: SignalName,
}

/// What to do to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContainerOp {
    /// Restart it (the usual cure for `unhealthy`).
    #[default]
    Restart,
    /// Stop then start it.
    StopStart,
}

/// Act on a Docker container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerAction {
    /// The container's name or id; empty in a policy rule means "the
    /// container the trigger is about".
    #[serde(default)]
    pub container: String,
    /// Restart, or stop then start.
    #[serde(default)]
    pub op: ContainerOp,
    /// Seconds Docker waits for the container to stop before killing it.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_s: u32,
}

fn default_stop_timeout() -> u32 {
    10
}

/// Post an Alertmanager-compatible alert to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The receiver, e.g. `http://127.0.0.1:9093/api/v2/alerts`.
    pub url: String,
    /// Bearer token sent to it, if any.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// One action, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    /// Restart (or stop/start) a container.
    Container(ContainerAction),
    /// FLUSHDB or FLUSHALL on Redis.
    RedisFlush(RedisFlush),
    /// `flush_all` on Memcached.
    MemcachedFlush(MemcachedFlush),
    /// Signal a process by PID and start time.
    Signal(SignalProcess),
    /// `systemctl restart UNIT`.
    ServiceRestart(ServiceRestart),
    /// A configured argv.
    Command(RunCommand),
    /// An alert to a webhook (the last rung of a ladder: tell a person).
    Webhook(Webhook),
}

impl ActionSpec {
    /// Short, stable name (a metric label).
    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::Container(c) => match c.op {
                ContainerOp::Restart => "container_restart",
                ContainerOp::StopStart => "container_stop_start",
            },
            ActionSpec::RedisFlush(_) => "redis_flush",
            ActionSpec::MemcachedFlush(_) => "memcached_flush",
            ActionSpec::Signal(_) => "signal",
            ActionSpec::ServiceRestart(_) => "service_restart",
            ActionSpec::Command(_) => "command",
            ActionSpec::Webhook(_) => "webhook",
        }
    }
}
