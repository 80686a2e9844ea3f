//! Mounted filesystems (`/proc/mounts` + `statvfs`): size, free space and
//! inode use per mount point.

use std::collections::HashSet;
use std::sync::Arc;

use aegis_core::Family;

use super::Cycle;
use crate::statfs::Statfs;

/// Filesystem size.
pub static FS_SIZE: Family = Family {
    name: "host_filesystem_size_bytes",
    help: "Filesystem size in bytes.",
    label: Some("mountpoint"),
};
/// Space available to unprivileged users.
pub static FS_AVAIL: Family = Family {
    name: "host_filesystem_avail_bytes",
    help: "Filesystem space available to unprivileged users, in bytes.",
    label: Some("mountpoint"),
};
/// Used share of the filesystem.
pub static FS_USED: Family = Family {
    name: "host_filesystem_used_ratio",
    help: "Share of the filesystem in use, as `df` computes it (0-1).",
    label: Some("mountpoint"),
};
/// Used share of inodes.
pub static FS_INODES_USED: Family = Family {
    name: "host_filesystem_inodes_used_ratio",
    help: "Share of the filesystem's inodes in use (0-1).",
    label: Some("mountpoint"),
};

/// The families this file emits.
pub static FILESYSTEM_FAMILIES: &[&Family] = &[&FS_SIZE, &FS_AVAIL, &FS_USED, &FS_INODES_USED];

/// Filesystem types that hold no user data worth watching.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "overlay_internal",
    "iso9660",
];

/// A mount from `/proc/mounts`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
}

/// Parses `/proc/mounts`, keeping real filesystems, one entry per mount point.
pub(super) fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut seen = HashSet::new();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let device = unescape(f.next()?);
            let mountpoint = unescape(f.next()?);
            let fstype = f.next()?.to_string();
            Some(Mount {
                device,
                mountpoint,
                fstype,
            })
        })
        .filter(|m| !PSEUDO.contains(&m.fstype.as_str()))
        .filter(|m| seen.insert(m.mountpoint.clone()))
        .collect()
}

/// Undoes the kernel's octal escapes in mount fields (`\040` is a space).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(b) = s
                .get(i + 1..i + 4)
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `statvfs` for every mount, each call bounded by `statfs`'s
/// timeout: a hung mount is reported and skipped, the others still read.
pub(super) fn collect(
    text: &str,
    exclude: &[String],
    statfs: &mut Statfs,
    cycle: &mut Cycle<'_>,
) -> Result<(), String> {
    let mut failures = Vec::new();
    for mount in parse_mounts(text) {
        if exclude.contains(&mount.mountpoint) {
            continue;
        }
        let path = std::path::Path::new(mount.mountpoint.as_str());
        let stat = match statfs.stat(path) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e.describe(path));
                continue;
            }
        };
        if stat.size <= 0.0 {
            continue;
        }
        let instance: Arc<str> = Arc::from(mount.mountpoint.as_str());
        cycle.gauge(&FS_SIZE, Some(&instance), stat.size);
        cycle.gauge(&FS_AVAIL, Some(&instance), stat.avail);
        if let Some(ratio) = stat.used_ratio() {
            cycle.gauge(&FS_USED, Some(&instance), ratio);
        }
        if let Some(ratio) = stat.inodes_ratio() {
            cycle.gauge(&FS_INODES_USED, Some(&instance), ratio);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_real_filesystems_once_each_and_unescapes_paths() {
        let text = "\
proc /proc proc rw 0 0
/dev/vda / ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
/dev/vdb /mnt/my\\040data xfs rw 0 0
/dev/vda / ext4 rw 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw 0 0
";
        let mounts = parse_mounts(text);
        let points: Vec<&str> = mounts.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, vec!["/", "/mnt/my data"]);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(parse_mounts("garbage\n\n").is_empty());
    }
}
