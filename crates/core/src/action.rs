//! What the agent can do about a problem: the actions and their typed
//! parameters, as written in the configuration and the API, and the checks
//! that make an action safe to run before any executor sees it. The `heal`
//! crate executes them; here they are plain data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{HostPort, HttpUrl};

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
    pub address: HostPort,
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
    pub address: HostPort,
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
    /// The unit, e.g. `nginx.service`; empty in a rule means the unit of the
    /// check the incident is about.
    #[serde(default)]
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
/// target" (a process check), found when the action runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalProcess {
    /// Process id; 0 for the incident's watched process.
    #[serde(default)]
    pub pid: i32,
    /// Its start time (field 22 of `/proc/PID/stat`, clock ticks after
    /// boot) as seen when the process was chosen.
    #[serde(default)]
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
    /// Stop it and leave it stopped.
    Stop,
    /// Kill it (SIGKILL) and leave it stopped.
    Kill,
}

/// Act on a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerAction {
    /// The container's name or id; empty in a policy rule means "the
    /// container the trigger is about".
    #[serde(default)]
    pub container: String,
    /// Restart, stop then start, stop, or kill.
    #[serde(default)]
    pub op: ContainerOp,
    /// Seconds the engine waits for the container to stop before killing it.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_s: u32,
}

fn default_stop_timeout() -> u32 {
    10
}

impl ContainerAction {
    /// A restart of the trigger's container with the default stop timeout.
    pub fn restart() -> Self {
        Self {
            container: String::new(),
            op: ContainerOp::Restart,
            stop_timeout_s: default_stop_timeout(),
        }
    }
}

/// Post an Alertmanager-compatible alert to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The receiver, e.g. `http://127.0.0.1:9093/api/v2/alerts`.
    pub url: HttpUrl,
    /// Bearer token sent to it, if any.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// One action, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    /// Restart (or stop/start, stop, kill) a container.
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

/// Programs that interpret a command string. Refused as `argv[0]`: a
/// configured command is an argv, and a shell would turn it back into a
/// string to parse.
pub const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "ash", "busybox",
];

/// Why an argv cannot be run, if it cannot.
pub fn argv_problem(argv: &[String]) -> Option<String> {
    let Some(program) = argv.first() else {
        return Some("`argv` is empty; give the program and its arguments as a list".into());
    };
    if program.trim().is_empty() {
        return Some("the program name (argv[0]) is empty".into());
    }
    let base = program.rsplit('/').next().unwrap_or(program);
    if SHELLS.contains(&base) {
        return Some(format!(
            "{program} is a shell; give the command itself as an argv list"
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Some("an argument holds a NUL byte".into());
    }
    None
}

/// Why a systemd unit name is not valid, if it is not: systemd's characters
/// only, so it can never be read as an option or anything else.
pub fn unit_problem(unit: &str) -> Option<String> {
    let ok = !unit.is_empty()
        && !unit.starts_with('-')
        && unit.len() <= 256
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | ':' | '-' | '\\'));
    (!ok).then(|| format!("{unit:?} is not a valid unit name"))
}

impl ActionSpec {
    /// Short, stable name (a metric label).
    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::Container(c) => match c.op {
                ContainerOp::Restart => "container_restart",
                ContainerOp::StopStart => "container_stop_start",
                ContainerOp::Stop => "container_stop",
                ContainerOp::Kill => "container_kill",
            },
            ActionSpec::RedisFlush(_) => "redis_flush",
            ActionSpec::MemcachedFlush(_) => "memcached_flush",
            ActionSpec::Signal(_) => "signal",
            ActionSpec::ServiceRestart(_) => "service_restart",
            ActionSpec::Command(_) => "command",
            ActionSpec::Webhook(_) => "webhook",
        }
    }

    /// What is wrong with the action, as `(field within the action,
    /// message)` pairs; empty when it may run. `in_rule` allows what a rule
    /// leaves to its trigger (no container, `pid = 0`, no unit).
    pub fn problems(&self, in_rule: bool) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self {
            ActionSpec::Container(c) => {
                if !in_rule && c.container.trim().is_empty() {
                    out.push(("container", "name the container to act on".to_string()));
                }
                if c.stop_timeout_s > 600 {
                    out.push((
                        "stop_timeout_s",
                        format!("must be at most 600, got {}", c.stop_timeout_s),
                    ));
                }
            }
            ActionSpec::RedisFlush(r) => {
                if r.username.is_some() && r.password.is_none() {
                    out.push(("username", "a username needs a password".to_string()));
                }
                if r.db > 65_535 {
                    out.push(("db", format!("must be at most 65535, got {}", r.db)));
                }
            }
            ActionSpec::MemcachedFlush(_) | ActionSpec::Webhook(_) => {}
            ActionSpec::Signal(s) => {
                if s.pid == 1 || s.pid < 0 {
                    out.push((
                        "pid",
                        format!(
                            "PID {} is never a target; give a process's PID, or 0 for the incident's watched process",
                            s.pid
                        ),
                    ));
                } else if s.pid == 0 && !in_rule && s.start_time != 0 {
                    out.push(("start_time", "pid 0 takes no start_time".to_string()));
                } else if s.pid > 1 && s.start_time == 0 {
                    out.push((
                        "start_time",
                        "give the process's start time (field 22 of /proc/PID/stat) so a recycled PID is never hit".to_string(),
                    ));
                }
            }
            ActionSpec::ServiceRestart(s) => {
                if !(in_rule && s.unit.is_empty()) {
                    if let Some(p) = unit_problem(&s.unit) {
                        out.push(("unit", p));
                    }
                }
            }
            ActionSpec::Command(c) => {
                if let Some(p) = argv_problem(&c.argv) {
                    out.push(("argv", p));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ActionSpec {
        serde_json::from_str(json).expect("an action")
    }

    #[test]
    fn unsafe_or_empty_actions_are_refused_before_they_run() {
        let cases = [
            (r#"{"kind":"command","argv":[]}"#, "argv"),
            (r#"{"kind":"command","argv":[""]}"#, "argv"),
            (r#"{"kind":"command","argv":["/bin/sh","-c","x"]}"#, "argv"),
            (r#"{"kind":"signal","pid":1,"signal":"TERM"}"#, "pid"),
            (
                r#"{"kind":"signal","pid":4242,"signal":"TERM"}"#,
                "start_time",
            ),
            (r#"{"kind":"service_restart","unit":""}"#, "unit"),
            (r#"{"kind":"service_restart","unit":"--force"}"#, "unit"),
        ];
        for (json, field) in cases {
            let problems = parse(json).problems(false);
            assert!(
                problems.iter().any(|(f, _)| *f == field),
                "{json}: {problems:?}"
            );
        }
        assert!(parse(r#"{"kind":"signal","pid":0,"signal":"TERM"}"#)
            .problems(true)
            .is_empty());
        assert!(parse(r#"{"kind":"command","argv":["true"]}"#)
            .problems(false)
            .is_empty());
    }

    #[test]
    fn addresses_and_urls_are_checked_when_read() {
        for bad in [
            r#"{"kind":"redis_flush","address":"nohost:notaport"}"#,
            r#"{"kind":"memcached_flush","address":"127.0.0.1"}"#,
            r#"{"kind":"webhook","url":"http://"}"#,
            r#"{"kind":"webhook","url":"javascript:alert(1)"}"#,
        ] {
            assert!(serde_json::from_str::<ActionSpec>(bad).is_err(), "{bad}");
        }
    }
}
