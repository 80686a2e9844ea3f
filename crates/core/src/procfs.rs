//! Pure parsers of procfs text that more than one part of the agent reads:
//! `/proc/PID/stat`. No file is opened here; callers read, these parse (and
//! the fuzz targets feed them anything).

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    /// The command name (`comm`), which may hold spaces and parentheses.
    pub comm: String,
    /// One-letter state (`R`, `S`, `Z`...).
    pub state: char,
    /// Parent PID.
    pub ppid: i32,
    /// User CPU, clock ticks.
    pub utime: u64,
    /// System CPU, clock ticks.
    pub stime: u64,
    /// Threads.
    pub threads: u64,
    /// Start time, clock ticks after boot: with the PID, it names one process.
    pub start_time: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name is in parentheses and may hold
/// spaces and parentheses itself, so the fields are counted from the last
/// `)`. `None` when the text is not such a line.
pub fn parse_pid_stat(text: &str) -> Option<PidStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let f: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After ") ": field 3 (state) is f[0]; ppid 4 -> f[1]; utime 14 -> f[11],
    // stime 15 -> f[12], num_threads 20 -> f[17], starttime 22 -> f[19],
    // rss 24 -> f[21].
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let state = f.first()?.chars().next()?;
    Some(PidStat {
        comm,
        state,
        ppid: f.get(1)?.parse().ok()?,
        utime: n(11)?,
        stime: n(12)?,
        threads: n(17).unwrap_or(0),
        start_time: n(19)?,
        rss_pages: n(21).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_with_spaces_and_parentheses_parse() {
        let stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 50\n";
        let p = parse_pid_stat(stat).expect("parses");
        assert_eq!(p.comm, "my (odd) proc");
        assert_eq!(p.start_time, 987_654);
        assert_eq!(
            (p.state, p.ppid, p.utime, p.stime, p.threads),
            ('S', 1, 5, 3, 1)
        );
        assert_eq!(p.rss_pages, 50);
    }

    #[test]
    fn truncated_or_garbage_lines_are_refused() {
        assert_eq!(parse_pid_stat(""), None);
        assert_eq!(parse_pid_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_pid_stat(")( S"), None);
    }
}
