//! What the command line prints. A closed standard output (`aegis status |
//! head -1`, `aegis actions | true`) ends the command quietly with its
//! usual exit code; a closed standard error loses the message, never the
//! process. `println!` would panic on either.

use std::io::Write;

/// Writes `text` and a newline to standard output. `false` only when the
/// write failed for another reason than a reader that went away.
pub fn out(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                stdout.write_all(b"\n")
            }
        })
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(_) => false,
    }
}

/// Writes `text` and a newline to standard error, ignoring failure.
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stderr.write_all(b"\n");
    }
}
