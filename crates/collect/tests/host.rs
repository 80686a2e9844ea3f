//! The host source against a fake procfs tree and against the real one.

use std::path::Path;
use std::time::Duration;

use aegis_collect::HostSource;
use aegis_core::{Observation, Reading};

struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("net")).expect("mkdir net");
        let fake = Self { dir };
        fake.write("stat", &stat(1000, 100, 3000));
        fake.write(
            "meminfo",
            "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nSwapTotal:       400 kB\nSwapFree:        300 kB\n",
        );
        fake.write("loadavg", "1.50 0.75 0.25 3/120 999\n");
        // One real path so statvfs answers; the rest are pseudo filesystems.
        let root = fake.dir.path().display().to_string();
        fake.write(
            "mounts",
            &format!("proc /proc proc rw 0 0\n/dev/fake {root} ext4 rw 0 0\n"),
        );
        fake.write("diskstats", &diskstats(0, 0, 0));
        fake.write(
            "net/dev",
            &netdev(&[("lo", 0), ("eth0", 1_000), ("veth9", 50)]),
        );
        fake
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write fake proc file");
    }
}

fn stat(busy_user: u64, iowait: u64, idle: u64) -> String {
    format!(
        "cpu  {busy_user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 {busy_user} 0 0 {idle} {iowait} 0 0 0 0 0\nintr 1 2 3\n"
    )
}

fn diskstats(sectors_read: u64, sectors_written: u64, io_ms: u64) -> String {
    format!(
        "   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0\n 254       0 vda 10 0 {sectors_read} 5 20 0 {sectors_written} 7 0 {io_ms} 12\n 254       1 vda1 10 0 {sectors_read} 5 20 0 {sectors_written} 7 0 {io_ms} 12\n"
    )
}

fn netdev(ifaces: &[(&str, u64)]) -> String {
    let mut s = String::from("Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n");
    for (name, rx) in ifaces {
        s.push_str(&format!(
            "{name:>6}: {rx} 10 0 0 0 0 0 0 {} 5 0 0 0 0 0 0\n",
            rx / 2
        ));
    }
    s
}

fn value(obs: &[Observation], series: &str) -> Option<Reading> {
    obs.iter()
        .find(|o| o.series.matches(series))
        .map(|o| o.reading)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn gauges_on_first_cycle_rates_from_the_second() {
    let fake = FakeProc::new();
    let mut host = HostSource::new(fake.root());
    let first = host.collect_at(secs(10), 10_000);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let obs = &first.observations;
    assert_eq!(
        value(obs, "host_memory_total_bytes"),
        Some(Reading::Value(1_024_000.0))
    );
    assert_eq!(
        value(obs, "host_memory_used_ratio"),
        Some(Reading::Value(0.75))
    );
    assert_eq!(
        value(obs, "host_swap_used_ratio"),
        Some(Reading::Value(0.25))
    );
    assert_eq!(value(obs, "host_load1"), Some(Reading::Value(1.5)));
    assert_eq!(value(obs, "host_procs_running"), Some(Reading::Value(3.0)));
    let root = fake.root().display().to_string();
    assert!(value(obs, &format!("host_filesystem_used_ratio/{root}")).is_some());
    // No rate on the first sample of a counter.
    assert_eq!(value(obs, "host_cpu_usage_ratio"), None);
    assert_eq!(value(obs, "host_net_rx_bytes_per_second/eth0"), None);

    // Two seconds later: 400 busy ticks, 100 iowait and 500 idle out of 1000.
    fake.write("stat", &stat(1400, 200, 3500));
    fake.write("diskstats", &diskstats(4, 8, 500));
    fake.write(
        "net/dev",
        &netdev(&[("lo", 0), ("eth0", 5_000), ("veth9", 70)]),
    );
    let second = host.collect_at(secs(12), 12_000);
    let obs = &second.observations;
    assert_eq!(
        value(obs, "host_cpu_usage_ratio"),
        Some(Reading::Value(0.4))
    );
    assert_eq!(
        value(obs, "host_cpu_iowait_ratio"),
        Some(Reading::Value(0.1))
    );
    assert_eq!(
        value(obs, "host_cpu_core_usage_ratio/0"),
        Some(Reading::Value(0.4))
    );
    assert_eq!(
        value(obs, "host_net_rx_bytes_per_second/eth0"),
        Some(Reading::Value(2_000.0))
    );
    assert_eq!(
        value(obs, "host_net_tx_bytes_per_second/eth0"),
        Some(Reading::Value(1_000.0))
    );
    assert_eq!(
        value(obs, "host_disk_read_bytes_per_second/vda"),
        Some(Reading::Value(1024.0))
    );
    assert_eq!(
        value(obs, "host_disk_write_bytes_per_second/vda"),
        Some(Reading::Value(2048.0))
    );
    assert_eq!(
        value(obs, "host_disk_busy_ratio/vda"),
        Some(Reading::Value(0.25))
    );
    // Partitions and loop devices are left out.
    assert_eq!(value(obs, "host_disk_read_bytes_per_second/vda1"), None);
    assert_eq!(value(obs, "host_disk_read_bytes_per_second/loop0"), None);
}

#[test]
fn counter_reset_gives_a_reset_marker_never_a_negative_rate() {
    let fake = FakeProc::new();
    let mut host = HostSource::new(fake.root());
    host.collect_at(secs(1), 1_000);
    // eth0's counters fall (driver reset).
    fake.write(
        "net/dev",
        &netdev(&[("lo", 0), ("eth0", 10), ("veth9", 60)]),
    );
    let obs = host.collect_at(secs(2), 2_000).observations;
    assert_eq!(
        value(&obs, "host_net_rx_bytes_per_second/eth0"),
        Some(Reading::CounterReset)
    );
    assert_eq!(
        value(&obs, "host_net_rx_bytes_per_second/veth9"),
        Some(Reading::Value(10.0))
    );
    for o in &obs {
        if let Reading::Value(v) = o.reading {
            assert!(v >= 0.0 && v.is_finite(), "{} = {v}", o.series);
        }
    }
    fake.write(
        "net/dev",
        &netdev(&[("lo", 0), ("eth0", 110), ("veth9", 60)]),
    );
    let obs = host.collect_at(secs(3), 3_000).observations;
    assert_eq!(
        value(&obs, "host_net_rx_bytes_per_second/eth0"),
        Some(Reading::Value(100.0))
    );
}

#[test]
fn interface_that_disappears_and_returns_with_lower_counters_starts_over() {
    let fake = FakeProc::new();
    let mut host = HostSource::new(fake.root());
    host.collect_at(secs(1), 1_000);
    fake.write("net/dev", &netdev(&[("lo", 0), ("eth0", 1_000)]));
    let obs = host.collect_at(secs(2), 2_000).observations;
    assert_eq!(value(&obs, "host_net_rx_bytes_per_second/veth9"), None);
    // veth9 is re-created: a first sample again, neither a reset nor a rate.
    fake.write(
        "net/dev",
        &netdev(&[("lo", 0), ("eth0", 1_000), ("veth9", 5)]),
    );
    let obs = host.collect_at(secs(3), 3_000).observations;
    assert_eq!(value(&obs, "host_net_rx_bytes_per_second/veth9"), None);
    fake.write(
        "net/dev",
        &netdev(&[("lo", 0), ("eth0", 1_000), ("veth9", 25)]),
    );
    let obs = host.collect_at(secs(5), 5_000).observations;
    assert_eq!(
        value(&obs, "host_net_rx_bytes_per_second/veth9"),
        Some(Reading::Value(10.0))
    );
}

#[test]
fn excluded_interfaces_and_mounts_are_left_out() {
    let fake = FakeProc::new();
    let root = fake.root().display().to_string();
    let mut host = HostSource::new(fake.root()).excluding(vec!["lo".into()], vec![root.clone()]);
    host.collect_at(secs(1), 1_000);
    let obs = host.collect_at(secs(2), 2_000).observations;
    assert!(value(&obs, "host_net_rx_bytes_per_second/lo").is_none());
    assert!(value(&obs, "host_net_rx_bytes_per_second/eth0").is_some());
    assert!(value(&obs, &format!("host_filesystem_used_ratio/{root}")).is_none());
}

#[test]
fn a_broken_file_costs_only_its_own_family() {
    let fake = FakeProc::new();
    fake.write("loadavg", "not numbers\n");
    std::fs::remove_file(fake.root().join("diskstats")).expect("rm diskstats");
    let mut host = HostSource::new(fake.root());
    let c = host.collect_at(secs(1), 1_000);
    assert_eq!(c.errors.len(), 2, "{:?}", c.errors);
    assert!(
        c.errors
            .iter()
            .any(|e| e.starts_with("load: loadavg: field 0 is not a number")),
        "{:?}",
        c.errors
    );
    assert!(
        c.errors
            .iter()
            .any(|e| e.starts_with("disk:") && e.contains("diskstats")),
        "{:?}",
        c.errors
    );
    assert!(value(&c.observations, "host_memory_used_ratio").is_some());
    assert!(c.unavailable.is_none());
}

#[test]
fn missing_procfs_is_reported_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut host = HostSource::new(dir.path().join("nope"));
    let c = host.collect_at(secs(1), 1_000);
    assert!(c.observations.is_empty());
    assert!(
        c.unavailable
            .as_deref()
            .is_some_and(|u| u.contains("no procfs")),
        "{:?}",
        c.unavailable
    );
}

#[test]
fn the_real_proc_yields_host_figures() {
    let mut host = HostSource::new("/proc");
    // The line of all CPUs: rates need it to have moved between two reads.
    let cpu_line = || {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
    };
    let before = cpu_line();
    host.collect_at(secs(1), 1_000);
    aegis_testkit::wait_until(Duration::from_secs(5), "the CPU counters to move", || {
        cpu_line() != before
    });
    let c = host.collect_at(secs(2), 2_000);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    for series in [
        "host_cpu_usage_ratio",
        "host_memory_used_ratio",
        "host_load1",
        "host_filesystem_used_ratio//",
    ] {
        assert!(value(&c.observations, series).is_some(), "{series} missing");
    }
    assert!(c
        .observations
        .iter()
        .any(|o| o.series.family().name == "host_net_rx_bytes_per_second"));
    // Counters tracked are bounded by what one cycle sees.
    let before = host.tracked_counters();
    host.collect_at(secs(3), 3_000);
    assert_eq!(host.tracked_counters(), before);
}
