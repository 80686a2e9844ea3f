//! FLUSHDB / FLUSHALL through the Redis protocol (RESP), with optional AUTH
//! (password, or ACL user and password) and SELECT. No `redis-cli`.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use aegis_core::action::RedisFlush;

use super::ExecError;

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The longest reply line read: a status or error line is short, and a
/// server that sends more without a line end is not one to trust.
pub const MAX_REPLY: u64 = 64 * 1024;

async fn call(reader: &mut BufReader<TcpStream>, args: &[&str]) -> Result<String, ExecError> {
    reader
        .get_mut()
        .write_all(&encode(args))
        .await
        .map_err(|e| ExecError::Failed(format!("sending {}: {e}", args[0])))?;
    read_reply(reader, args[0]).await
}

/// Reads one reply to `command`: `+status` is its text, `-error` a refusal,
/// anything else (or nothing, or more than [`MAX_REPLY`] bytes without a
/// line end, or bytes that are not text) a failure naming what came.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    command: &str,
) -> Result<String, ExecError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_REPLY)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| ExecError::Failed(format!("reading the reply to {command}: {e}")))?;
    if n == 0 {
        return Err(ExecError::Failed(format!(
            "connection closed before the reply to {command}"
        )));
    }
    if !line.ends_with(b"\n") && n as u64 >= MAX_REPLY {
        return Err(ExecError::Failed(format!(
            "the reply to {command} is longer than {MAX_REPLY} bytes"
        )));
    }
    let text = String::from_utf8_lossy(&line);
    let line = text.trim_end();
    if let Some(status) = line.strip_prefix('+') {
        Ok(clip(status, false))
    } else if let Some(error) = line.strip_prefix('-') {
        Err(ExecError::Failed(format!(
            "{command} refused: {}",
            clip(error, false)
        )))
    } else {
        Err(ExecError::Failed(format!(
            "unexpected reply to {command}: {}",
            clip(line, true)
        )))
    }
}

/// A reply as shown in a message: at most 200 characters of it, quoted
/// when asked.
fn clip(line: &str, quoted: bool) -> String {
    let head: String = line.chars().take(200).collect();
    let mut shown = if quoted { format!("{head:?}") } else { head };
    if line.chars().count() > 200 {
        shown.push_str("...");
    }
    shown
}

/// Connects, authenticates, selects and flushes, all within `timeout`.
pub async fn run(p: &RedisFlush, timeout: Duration) -> Result<String, ExecError> {
    super::within(timeout, flush(p)).await
}

async fn flush(p: &RedisFlush) -> Result<String, ExecError> {
    let stream = TcpStream::connect(p.address.as_str())
        .await
        .map_err(|e| ExecError::Failed(format!("connecting to redis at {}: {e}", p.address)))?;
    let mut reader = BufReader::new(stream);
    if let Some(password) = &p.password {
        match &p.username {
            Some(user) => call(&mut reader, &["AUTH", user, &password.0]).await?,
            None => call(&mut reader, &["AUTH", &password.0]).await?,
        };
    }
    if p.all {
        call(&mut reader, &["FLUSHALL"]).await?;
        Ok(format!("FLUSHALL on {}", p.address))
    } else {
        let db = p.db.to_string();
        call(&mut reader, &["SELECT", &db]).await?;
        call(&mut reader, &["FLUSHDB"]).await?;
        Ok(format!("FLUSHDB of db {} on {}", p.db, p.address))
    }
}

#[cfg(test)]
mod tests {
    use super::{encode, read_reply, MAX_REPLY};

    fn reply(bytes: &[u8]) -> Result<String, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut input = bytes;
        rt.block_on(read_reply(&mut input, "FLUSHDB"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn replies_are_status_error_or_named_as_unexpected() {
        assert_eq!(reply(b"+OK\r\n"), Ok("OK".to_string()));
        assert!(reply(b"-NOAUTH Authentication required.\r\n")
            .is_err_and(|e| e.contains("FLUSHDB refused: NOAUTH")));
        assert!(reply(b"").is_err_and(|e| e.contains("connection closed")));
        assert!(reply(b":1\r\n").is_err_and(|e| e.contains("unexpected reply to FLUSHDB: \":1\"")));
        assert!(reply(b"\xff\xfe\r\n").is_err_and(|e| e.contains("unexpected reply")));
        // Regression: a reply starting with a
        // multi-byte character panicked when split after its first byte.
        assert!(reply("é\r\n".as_bytes()).is_err_and(|e| e.contains("unexpected reply")));
        // A server that never ends its line is not read without bound.
        let endless = vec![b'+'; MAX_REPLY as usize + 10];
        assert!(reply(&endless).is_err_and(|e| e.contains("longer than")));
        let long = format!("-{}\r\n", "x".repeat(1000));
        assert!(reply(long.as_bytes()).is_err_and(|e| e.len() < 1200));
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["SELECT", "2"]),
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n".to_vec()
        );
        // Arguments are length-prefixed: nothing in them can inject a command.
        assert_eq!(
            encode(&["AUTH", "a\r\nFLUSHALL"]),
            b"*2\r\n$4\r\nAUTH\r\n$11\r\na\r\nFLUSHALL\r\n".to_vec()
        );
    }
}
