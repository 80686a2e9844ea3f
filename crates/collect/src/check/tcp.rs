//! `tcp` checks: a connection, and optionally a request and the reply it
//! must start with (Redis `PING` / `+PONG`, an SMTP greeting...).

use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::CheckConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Run;

/// Most bytes of a reply read to compare.
const MAX_REPLY: usize = 4096;

/// A TCP check's probe.
pub struct TcpProbe {
    address: String,
    send: Option<String>,
    expect: Option<String>,
}

fn io_class(e: &std::io::Error) -> FailureClass {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => FailureClass::Refused,
        std::io::ErrorKind::TimedOut => FailureClass::Timeout,
        _ if e.to_string().contains("lookup") => FailureClass::Dns,
        _ => FailureClass::Other,
    }
}

impl TcpProbe {
    /// The probe of a validated `tcp` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        Ok(Self {
            address: c
                .address
                .as_ref()
                .ok_or("a tcp check needs an address")?
                .to_string(),
            send: c.send.clone(),
            expect: c.expect.clone(),
        })
    }

    /// Connects, sends and reads within `timeout`.
    pub async fn run(&mut self, timeout: Duration) -> Run {
        let started = tokio::time::Instant::now();
        let outcome = match tokio::time::timeout(timeout, self.exchange()).await {
            Ok(o) => o,
            Err(_) => CheckOutcome::failed(
                FailureClass::Timeout,
                format!("{} did not answer within {timeout:?}", self.address),
            ),
        };
        Run {
            latency: (outcome.ok() == Some(true)).then(|| started.elapsed()),
            outcome,
            value: None,
            observations: Vec::new(),
        }
    }

    async fn exchange(&self) -> CheckOutcome {
        let mut stream = match TcpStream::connect(&self.address).await {
            Ok(s) => s,
            Err(e) => {
                return CheckOutcome::failed(
                    io_class(&e),
                    format!("connecting to {}: {e}", self.address),
                )
            }
        };
        if let Some(send) = &self.send {
            if let Err(e) = stream.write_all(send.as_bytes()).await {
                return CheckOutcome::failed(
                    io_class(&e),
                    format!("sending to {}: {e}", self.address),
                );
            }
        }
        let Some(expect) = &self.expect else {
            return CheckOutcome::Passed;
        };
        judge_reply(&mut stream, expect, &self.address).await
    }
}

/// Reads what `reader` answers, up to the length of `expect` (and never
/// more than [`MAX_REPLY`] bytes), and judges it: it must start with
/// `expect`. `address` names the peer in the failure.
pub async fn judge_reply<R: AsyncRead + Unpin>(
    reader: &mut R,
    expect: &str,
    address: &str,
) -> CheckOutcome {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    let wanted = expect.len().min(MAX_REPLY);
    while reply.len() < wanted {
        let room = (wanted - reply.len()).min(chunk.len());
        match reader.read(&mut chunk[..room]).await {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return CheckOutcome::failed(io_class(&e), format!("reading from {address}: {e}"))
            }
        }
    }
    if reply.starts_with(expect.as_bytes()) {
        CheckOutcome::Passed
    } else {
        let got = String::from_utf8_lossy(&reply[..reply.len().min(80)]).into_owned();
        CheckOutcome::failed(
            FailureClass::BadReply,
            format!("{address} answered {got:?}, expected it to start with {expect:?}"),
        )
    }
}
