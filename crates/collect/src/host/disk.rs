//! `/proc/diskstats`: IO rates per whole disk (partitions, loop and RAM
//! devices left out, as node-exporter does).

use std::sync::Arc;

use aegis_core::Family;

use super::{field, Cycle};

/// Bytes read per second.
pub static DISK_READ_BYTES: Family = Family {
    name: "host_disk_read_bytes_per_second",
    help: "Bytes read from the disk per second.",
    label: Some("device"),
};
/// Bytes written per second.
pub static DISK_WRITE_BYTES: Family = Family {
    name: "host_disk_write_bytes_per_second",
    help: "Bytes written to the disk per second.",
    label: Some("device"),
};
/// Reads completed per second.
pub static DISK_READS: Family = Family {
    name: "host_disk_reads_per_second",
    help: "Reads completed per second.",
    label: Some("device"),
};
/// Writes completed per second.
pub static DISK_WRITES: Family = Family {
    name: "host_disk_writes_per_second",
    help: "Writes completed per second.",
    label: Some("device"),
};
/// Share of time the disk was busy.
pub static DISK_BUSY: Family = Family {
    name: "host_disk_busy_ratio",
    help: "Share of time the disk had IO in flight (0-1).",
    label: Some("device"),
};

/// The families this file emits.
pub static DISK_FAMILIES: &[&Family] = &[
    &DISK_READ_BYTES,
    &DISK_WRITE_BYTES,
    &DISK_READS,
    &DISK_WRITES,
    &DISK_BUSY,
];

/// diskstats counts sectors of 512 bytes whatever the device's real sector size.
const SECTOR: f64 = 512.0;

/// Whether the device is a partition or a pseudo device rather than a disk.
pub(super) fn ignored(name: &str) -> bool {
    const PSEUDO: &[&str] = &["loop", "ram", "zram", "fd", "sr"];
    if PSEUDO.iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    }) {
        return true;
    }
    // nvme0n1p2, mmcblk0p1
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        return name.rsplit_once('p').is_some_and(|(head, tail)| {
            !tail.is_empty()
                && tail.bytes().all(|b| b.is_ascii_digit())
                && head.ends_with(|c: char| c.is_ascii_digit())
        });
    }
    // sda1, vdb3, xvda1, hda2
    for prefix in ["sd", "vd", "xvd", "hd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            let digits = &rest[letters..];
            return letters > 0 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        }
    }
    false
}

/// Parses `/proc/diskstats`.
pub(super) fn collect(text: &str, cycle: &mut Cycle<'_>) -> Result<(), String> {
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = f.get(2) else { continue };
        if ignored(name) {
            continue;
        }
        let what = format!("diskstats {name}");
        let reads: u64 = field(&f, 3, &what)?;
        let sectors_read: u64 = field(&f, 5, &what)?;
        let writes: u64 = field(&f, 7, &what)?;
        let sectors_written: u64 = field(&f, 9, &what)?;
        let io_ms: u64 = field(&f, 12, &what)?;
        let device: Arc<str> = Arc::from(*name);
        cycle.rate(&DISK_READ_BYTES, &device, sectors_read, SECTOR);
        cycle.rate(&DISK_WRITE_BYTES, &device, sectors_written, SECTOR);
        cycle.rate(&DISK_READS, &device, reads, 1.0);
        cycle.rate(&DISK_WRITES, &device, writes, 1.0);
        // io_ticks is in ms: ms per second / 1000 is the busy share.
        let step = cycle.counter(&DISK_BUSY, &device, io_ms);
        let step = super::StepExt::map_rate(step, |r| (r / 1000.0).clamp(0.0, 1.0));
        cycle.emit_step(&DISK_BUSY, Some(&device), step);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ignored;

    #[test]
    fn whole_disks_are_kept_partitions_and_pseudo_devices_ignored() {
        for keep in ["sda", "vda", "nvme0n1", "mmcblk0", "xvdb", "dm-0", "md0"] {
            assert!(!ignored(keep), "{keep} should be kept");
        }
        for skip in [
            "sda1",
            "vda2",
            "nvme0n1p3",
            "mmcblk0p1",
            "loop7",
            "ram0",
            "zram0",
            "xvda1",
            "sr0",
        ] {
            assert!(ignored(skip), "{skip} should be ignored");
        }
    }
}
