//! Where the agent keeps its files.

use std::path::{Path, PathBuf};

use aegis_core::config::Config;

/// The system-wide state directory, used by root when it exists (the
/// Debian package and the systemd unit create it).
pub const SYSTEM_STATE_DIR: &str = "/var/lib/aegis";

/// The system-wide configuration file, read by root when no `--config` is
/// given and it exists (the Debian package installs it).
pub const SYSTEM_CONFIG: &str = "/etc/aegis/aegis.toml";

/// The configuration file to read: the one named, else for root
/// [`SYSTEM_CONFIG`] when it exists, else none (the embedded defaults).
pub fn config_file(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(p) => Some(p.to_path_buf()),
        None if is_root() && Path::new(SYSTEM_CONFIG).is_file() => {
            Some(PathBuf::from(SYSTEM_CONFIG))
        }
        None => None,
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Where the agent keeps its files when the config does not say: for root,
/// `/var/lib/aegis` when it exists; else `$XDG_STATE_HOME/aegis`, else
/// `~/.local/state/aegis`.
pub fn default_state_dir() -> PathBuf {
    if is_root() && Path::new(SYSTEM_STATE_DIR).is_dir() {
        return PathBuf::from(SYSTEM_STATE_DIR);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("aegis");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/aegis");
    }
    PathBuf::from("aegis-state")
}

/// The files one agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The SQLite file.
    pub db: PathBuf,
    /// The lock that keeps a second agent off this state.
    pub lock: PathBuf,
}

impl Paths {
    /// The paths the config resolves to.
    pub fn of(config: &Config) -> Self {
        let state_dir = config
            .agent
            .state_dir
            .clone()
            .unwrap_or_else(default_state_dir);
        let db = config
            .store
            .path
            .clone()
            .unwrap_or_else(|| state_dir.join("aegis.db"));
        let lock = state_dir.join("aegis.lock");
        Self {
            state_dir,
            db,
            lock,
        }
    }
}

/// The state directory and database path the config resolves to.
pub fn resolve_paths(config: &Config) -> (PathBuf, PathBuf) {
    let p = Paths::of(config);
    (p.state_dir, p.db)
}
