//! FLUSHDB / FLUSHALL through the Redis protocol (RESP), with optional AUTH
//! (password, or ACL user and password) and SELECT. No `redis-cli`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

async fn call(reader: &mut BufReader<TcpStream>, args: &[&str]) -> Result<String, ExecError> {
    reader
        .get_mut()
        .write_all(&encode(args))
        .await
        .map_err(|e| ExecError::Failed(format!("sending {}: {e}", args[0])))?;
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .await
        .map_err(|e| ExecError::Failed(format!("reading the reply to {}: {e}", args[0])))?;
    if n == 0 {
        return Err(ExecError::Failed(format!(
            "connection closed before the reply to {}",
            args[0]
        )));
    }
    let line = line.trim_end();
    match line.split_at(line.len().min(1)) {
        ("+", rest) => Ok(rest.to_string()),
        ("-", rest) => Err(ExecError::Failed(format!("{} refused: {rest}", args[0]))),
        _ => Err(ExecError::Failed(format!(
            "unexpected reply to {}: {line:?}",
            args[0]
        ))),
    }
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
    use super::encode;

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
