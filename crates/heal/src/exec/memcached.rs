//! `flush_all` through the Memcached text protocol. No `nc`.

use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    read_reply(&mut reader, p.address.as_str()).await
}

/// The longest reply line read (`OK` is two bytes).
pub const MAX_REPLY: u64 = 64 * 1024;

/// Reads the reply to `flush_all`: `OK` is success; anything else (an
/// error line, nothing, more than [`MAX_REPLY`] bytes without a line end)
/// a failure naming what came.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    address: &str,
) -> Result<String, ExecError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_REPLY)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| ExecError::Failed(format!("reading the reply to flush_all: {e}")))?;
    if !line.ends_with(b"\n") && n as u64 >= MAX_REPLY {
        return Err(ExecError::Failed(format!(
            "the reply to flush_all is longer than {MAX_REPLY} bytes"
        )));
    }
    let text = String::from_utf8_lossy(&line);
    match text.trim_end() {
        "OK" => Ok(format!("flush_all on {address}")),
        "" => Err(ExecError::Failed(
            "connection closed before the reply to flush_all".into(),
        )),
        other => {
            let shown: String = other.chars().take(200).collect();
            Err(ExecError::Failed(format!("flush_all refused: {shown:?}")))
        }
    }
}
