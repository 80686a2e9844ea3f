//! One agent per state directory: an exclusive lock on `aegis.lock`,
//! holding the PID of its owner. A second agent on the same state refuses
//! to start and names the process that holds it; the lock goes with the
//! process (the kernel releases it even after a SIGKILL), so a crash never
//! leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why the state could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds it.
    #[error("another agent (PID {pid}) already runs on the state directory {}; stop it, or give this one its own --state-dir", dir.display())]
    Held {
        /// The holder's PID, as it wrote it (`unknown` if unreadable).
        pid: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// The lock file cannot be made.
    #[error("cannot use the state directory {}: {why}", dir.display())]
    Unusable {
        /// The state directory.
        dir: PathBuf,
        /// Why, in words.
        why: String,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Says what is wrong with a state directory in words an operator can act on.
pub fn describe_dir_error(dir: &Path, e: &std::io::Error) -> String {
    if let Ok(m) = std::fs::metadata(dir) {
        if !m.is_dir() {
            return format!("{} exists and is not a directory", dir.display());
        }
    }
    match e.raw_os_error() {
        Some(libc::EROFS) => format!("{} is on a read-only file system", dir.display()),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            format!("{} is not writable by this user", dir.display())
        }
        Some(libc::ENOSPC) => format!("the disk holding {} is full", dir.display()),
        Some(libc::ENOTDIR) | Some(libc::EEXIST) => {
            format!("a part of {} is a file, not a directory", dir.display())
        }
        _ => format!("{}: {e}", dir.display()),
    }
}

/// Takes the state directory's lock, creating the directory if needed.
pub fn lock(dir: &Path, lock_path: &Path) -> Result<StateLock, LockError> {
    let unusable = |e: std::io::Error| LockError::Unusable {
        dir: dir.to_path_buf(),
        why: describe_dir_error(dir, &e),
    };
    std::fs::create_dir_all(dir).map_err(unusable)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(unusable)?;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            return Err(LockError::Held {
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_string()
                },
                dir: dir.to_path_buf(),
            });
        }
        return Err(unusable(err));
    }
    // Ours: say who holds it.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(StateLock {
        _file: file,
        path: lock_path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let path = state.join("aegis.lock");
        let held = lock(&state, &path).expect("first");
        // flock locks belong to the open file description: a second open
        // in this same process conflicts as a second agent would.
        match lock(&state, &path) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("second lock: {other:?}"),
        }
        drop(held);
        assert!(lock(&state, &path).is_ok(), "released with its holder");
    }

    #[test]
    fn a_state_directory_that_is_a_file_is_named_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("state");
        std::fs::write(&file, "").expect("file");
        let err = lock(&file, &file.join("aegis.lock")).expect_err("a file");
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
