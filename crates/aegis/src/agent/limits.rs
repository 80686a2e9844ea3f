//! Process limits the agent sets for itself at start.

/// Descriptors the agent asks for (the soft limit is raised up to this,
/// never beyond the hard limit).
const WANTED_OPEN_FILES: libc::rlim_t = 65_536;

/// Raises the soft limit on open files toward the hard one: the API caps
/// its connections well below it, so procfs reads, the store and the
/// container engine always have descriptors left.
pub fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let wanted = WANTED_OPEN_FILES.min(lim.rlim_max);
        if lim.rlim_cur < wanted {
            lim.rlim_cur = wanted;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
