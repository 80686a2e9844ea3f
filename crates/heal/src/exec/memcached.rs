//! `flush_all` through the Memcached text protocol. No `nc`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use aegis_core::action::MemcachedFlush;

use super::ExecError;

/// Sends `flush_all` and expects `OK`, within `timeout`.
pub async fn run(p: &MemcachedFlush, timeout: Duration) -> Result<String, ExecError> {
    super::within(timeout, flush(p)).await
}

async fn flush(p: &MemcachedFlush) -> Result<String, ExecError> {
    let stream = TcpStream::connect(p.address.as_str())
        .await
        .map_err(|e| ExecError::Failed(format!("connecting to memcached at {}: {e}", p.address)))?;
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(b"flush_all\r\n")
        .await
        .map_err(|e| ExecError::Failed(format!("sending flush_all: {e}")))?;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .await
        .map_err(|e| ExecError::Failed(format!("reading the reply to flush_all: {e}")))?;
    match line.trim_end() {
        "OK" => Ok(format!("flush_all on {}", p.address)),
        "" => Err(ExecError::Failed(
            "connection closed before the reply to flush_all".into(),
        )),
        other => Err(ExecError::Failed(format!("flush_all refused: {other:?}"))),
    }
}
