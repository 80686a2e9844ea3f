//! FLUSHDB / FLUSHALL through the Redis protocol (RESP), with optional AUTH
//! (password, or ACL user and password) and SELECT. No `redis-cli`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{ExecError, Secret};

/// Parameters of a Redis flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFlush {
    /// `host:port`.
    pub address: String,
    /// Database to flush (FLUSHDB); ignored with `all`.
    #[serde(default)]
    pub db: u32,
    /// FLUSHALL instead of FLUSHDB.
    #[serde(default)]
    pub all: bool,
    /// ACL user (Redis 6+); with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for AUTH.
    #[serde(default)]
    pub password: Option<Secret>,
}

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

impl RedisFlush {
    /// Connects, authenticates, selects and flushes, all within `timeout`.
    pub async fn run(&self, timeout: Duration) -> Result<String, ExecError> {
        match tokio::time::timeout(timeout, self.flush()).await {
            Ok(r) => r,
            Err(_) => Err(ExecError::Timeout(timeout)),
        }
    }

    async fn flush(&self) -> Result<String, ExecError> {
        let stream = TcpStream::connect(&self.address).await.map_err(|e| {
            ExecError::Failed(format!("connecting to redis at {}: {e}", self.address))
        })?;
        let mut reader = BufReader::new(stream);
        if let Some(password) = &self.password {
            match &self.username {
                Some(user) => call(&mut reader, &["AUTH", user, &password.0]).await?,
                None => call(&mut reader, &["AUTH", &password.0]).await?,
            };
        }
        if self.all {
            call(&mut reader, &["FLUSHALL"]).await?;
            Ok(format!("FLUSHALL on {}", self.address))
        } else {
            let db = self.db.to_string();
            call(&mut reader, &["SELECT", &db]).await?;
            call(&mut reader, &["FLUSHDB"]).await?;
            Ok(format!("FLUSHDB of db {} on {}", self.db, self.address))
        }
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
