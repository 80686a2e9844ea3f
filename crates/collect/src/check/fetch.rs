//! One HTTP/1.1 exchange, as a check needs it: a new connection, one
//! request with `Connection: close`, the status and at most a bounded part
//! of the body, redirects followed a few times; TLS (rustls) for `https`.
//!
//! Checks ask a question and hang up, as the kubelet's probes do, so they
//! need none of a general client's machinery (a pool, a connection task per
//! request, a DNS thread for literal addresses): with hundreds of checks
//! that machinery was two thirds of their CPU. The response is parsed by
//! `httparse`; the body is read by `Content-Length`, chunks, or up to the
//! close.

use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::FailureClass;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// Most bytes of the status line and headers.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers of an answer.
const MAX_HEADERS: usize = 100;
/// Room made in the buffer before each read, at least.
const READ_CHUNK: usize = 8192;

/// What a request asks.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// `GET`, `HEAD` or `POST`.
    pub method: &'a str,
    /// Headers to send (valid names, no line breaks: checked by the
    /// configuration).
    pub headers: &'a [(String, String)],
    /// Most bytes of the body kept.
    pub max_body: usize,
}

/// An answer: its status and (the first `max_body` bytes of) its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, cut at `max_body`.
    pub body: Vec<u8>,
}

/// Why an exchange failed: a class for the check's result, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// The kind of failure.
    pub class: FailureClass,
    /// What happened, in one line.
    pub message: String,
}

impl FetchError {
    fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }

    fn io(what: &str, e: &std::io::Error) -> Self {
        let class = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => FailureClass::Refused,
            std::io::ErrorKind::TimedOut => FailureClass::Timeout,
            _ => FailureClass::Other,
        };
        Self::new(class, format!("{what}: {e}"))
    }
}

/// Where TLS connections get their settings: one verifying, one not.
#[derive(Clone)]
pub struct TlsSettings {
    verifying: Arc<rustls::ClientConfig>,
    trusting: Arc<rustls::ClientConfig>,
}

impl TlsSettings {
    /// The settings every `https` check shares (the system's authorities
    /// are read once).
    pub fn shared() -> Result<Self, String> {
        static SHARED: std::sync::OnceLock<Result<TlsSettings, String>> =
            std::sync::OnceLock::new();
        SHARED.get_or_init(Self::load).clone()
    }

    fn load() -> Result<Self, String> {
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let verifying = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let trusting = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Self {
            verifying: Arc::new(verifying),
            trusting: Arc::new(trusting),
        })
    }

    fn config(&self, verify: bool) -> Arc<rustls::ClientConfig> {
        Arc::clone(if verify {
            &self.verifying
        } else {
            &self.trusting
        })
    }
}

/// The process's rustls crypto provider, or aws-lc-rs.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// `tls_verify = false`: any certificate is accepted, but the handshake's
/// signatures are still checked (the connection is encrypted to whoever
/// holds the certificate's key).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Asks `url` (following redirects) and reads the answer, all within
/// `timeout`.
pub async fn fetch(
    url: &Url,
    ask: &Ask<'_>,
    tls: Option<(&TlsSettings, bool)>,
    timeout: Duration,
) -> Result<Answer, FetchError> {
    match tokio::time::timeout(timeout, follow(url, ask, tls)).await {
        Ok(answer) => answer,
        Err(_) => Err(FetchError::new(
            FailureClass::Timeout,
            format!("no full answer within {timeout:?}"),
        )),
    }
}

async fn follow(
    url: &Url,
    ask: &Ask<'_>,
    tls: Option<(&TlsSettings, bool)>,
) -> Result<Answer, FetchError> {
    let mut url = url.clone();
    let mut method = ask.method;
    for _ in 0..=MAX_REDIRECTS {
        let (answer, location) = once(&url, method, ask, tls).await?;
        let Some(location) = location.filter(|_| is_redirect(answer.status)) else {
            return Ok(answer);
        };
        let next = url.join(&location).map_err(|e| {
            FetchError::new(
                FailureClass::Other,
                format!("redirect {} to {location:?}: {e}", answer.status),
            )
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(FetchError::new(
                FailureClass::Other,
                format!("redirect to {next}: not http or https"),
            ));
        }
        // 303, and 301/302 after a POST, ask again with GET (as browsers do).
        if answer.status == 303 || (method == "POST" && matches!(answer.status, 301 | 302)) {
            method = "GET";
        }
        url = next;
    }
    Err(FetchError::new(
        FailureClass::Other,
        format!("more than {MAX_REDIRECTS} redirects (the last to {url})"),
    ))
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// One exchange: the answer and its `Location`, if any.
async fn once(
    url: &Url,
    method: &str,
    ask: &Ask<'_>,
    tls: Option<(&TlsSettings, bool)>,
) -> Result<(Answer, Option<String>), FetchError> {
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::new(FailureClass::Other, format!("{url}: no host")))?;
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FetchError::new(FailureClass::Other, format!("{url}: no port")))?;
    let stream = connect(host, port).await?;
    let request = request_head(url, method, ask.headers);
    if https {
        // On the heap: a TLS session is large, and a plain check's future
        // (one per check, moved at each run) should not carry its room.
        Box::pin(over_tls(stream, host, tls, &request, method, ask.max_body)).await
    } else {
        exchange(stream, &request, method, ask.max_body).await
    }
}

/// The TLS handshake on `stream`, then the exchange.
async fn over_tls(
    stream: TcpStream,
    host: &str,
    tls: Option<(&TlsSettings, bool)>,
    request: &[u8],
    method: &str,
    max_body: usize,
) -> Result<(Answer, Option<String>), FetchError> {
    // The handshake writes twice in a row; Nagle would hold the second
    // back for the first's acknowledgement. (A plain request is one
    // write and needs no such setting.)
    let _ = stream.set_nodelay(true);
    let Some((settings, verify)) = tls else {
        return Err(FetchError::new(
            FailureClass::Tls,
            "no TLS settings for an https url",
        ));
    };
    let name = rustls_pki_types::ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|e| FetchError::new(FailureClass::Tls, format!("{host:?}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(settings.config(verify));
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| FetchError::new(FailureClass::Tls, format!("TLS handshake: {e}")))?;
    exchange(stream, request, method, max_body).await
}

/// Connects to the first of the host's addresses that answers.
async fn connect(host: &str, port: u16) -> Result<TcpStream, FetchError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    // A literal address is parsed, not looked up (no resolver thread).
    let addresses: Vec<std::net::SocketAddr> = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| FetchError::new(FailureClass::Dns, format!("looking up {bare}: {e}")))?
            .collect(),
    };
    let mut last = None;
    for a in &addresses {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(FetchError::io(&format!("connecting to {a}"), &e)),
        }
    }
    Err(last
        .unwrap_or_else(|| FetchError::new(FailureClass::Dns, format!("{bare} has no address"))))
}

/// The request's head: the method, the path, `Host`, the agent's user
/// agent and `Connection: close`, unless the check's headers say otherwise.
pub fn request_head(url: &Url, method: &str, headers: &[(String, String)]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !has("host") {
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(p) => head.push_str(&format!("Host: {host}:{p}\r\n")),
            None => head.push_str(&format!("Host: {host}\r\n")),
        }
    }
    if !has("user-agent") {
        head.push_str(concat!(
            "User-Agent: aegis/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    if !has("authorization") && !url.username().is_empty() {
        use base64::Engine as _;
        let decoded = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decoded(url.username());
        let password = url.password().map(decoded).unwrap_or_default();
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ));
    }
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// Sends the request and reads the answer and its `Location` (public for
/// the fuzzer, which plays the server).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    method: &str,
    max_body: usize,
) -> Result<(Answer, Option<String>), FetchError> {
    stream
        .write_all(request)
        .await
        .map_err(|e| FetchError::io("sending the request", &e))?;
    stream
        .flush()
        .await
        .map_err(|e| FetchError::io("sending the request", &e))?;
    let mut reader = Reader::new(stream);
    loop {
        let head = reader.head().await?;
        // An interim answer (100 Continue, 103 Early Hints): the real one
        // follows.
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        let no_body = method == "HEAD" || matches!(head.status, 204 | 304);
        let body = if no_body {
            Vec::new()
        } else if head.chunked {
            reader.chunked(max_body).await?
        } else if let Some(n) = head.content_length {
            reader.exactly(n, max_body).await?
        } else {
            reader.until_close(max_body).await?
        };
        return Ok((
            Answer {
                status: head.status,
                body,
            },
            head.location,
        ));
    }
}

/// What the head of an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, when given (and no chunking).
    pub content_length: Option<usize>,
    /// `Location`.
    pub location: Option<String>,
}

/// Parses a complete head at the start of `buf`: the head and its length,
/// `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let bad = |what: String| FetchError::new(FailureClass::Other, what);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(format!("not an HTTP answer: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut chunked = false;
    let mut content_length = None;
    let mut location = None;
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| bad(format!("Content-Length {value:?} is not a number")))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(bad("two different Content-Length headers".to_string()));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("location") {
            location = Some(value.to_string());
        }
    }
    if chunked {
        content_length = None;
    }
    Ok(Some((
        Head {
            status,
            chunked,
            content_length,
            location,
        },
        len,
    )))
}

/// A buffered reader of one answer.
struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
    eof: bool,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(4096),
            eof: false,
        }
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool, FetchError> {
        if self.eof {
            return Ok(false);
        }
        // Straight into the buffer's room: a buffer on the stack would be
        // held across the await, inside every check's future (8 KiB each,
        // copied whenever the future moves).
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = match self.stream.read_buf(&mut self.buf).await {
            Ok(n) => n,
            // A peer that closes without TLS's close_notify: the end.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(FetchError::io("reading the answer", &e)),
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }

    async fn head(&mut self) -> Result<Head, FetchError> {
        loop {
            if let Some((head, len)) = parse_head(&self.buf)? {
                self.buf.drain(..len);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(FetchError::new(
                    FailureClass::Other,
                    format!("the answer's head is longer than {MAX_HEAD} bytes"),
                ));
            }
            if !self.fill().await? {
                return Err(FetchError::new(
                    FailureClass::Other,
                    if self.buf.is_empty() {
                        "the connection closed without an answer".to_string()
                    } else {
                        "the connection closed within the answer's head".to_string()
                    },
                ));
            }
        }
    }

    /// A body of `n` bytes, of which the first `max` are kept.
    async fn exactly(&mut self, n: usize, max: usize) -> Result<Vec<u8>, FetchError> {
        let want = n.min(max);
        while self.buf.len() < want {
            if !self.fill().await? {
                return Err(FetchError::new(
                    FailureClass::Other,
                    format!(
                        "the connection closed after {} of {n} body bytes",
                        self.buf.len()
                    ),
                ));
            }
        }
        Ok(self.buf.drain(..want).collect())
    }

    /// A body up to the close, of which the first `max` are kept.
    async fn until_close(&mut self, max: usize) -> Result<Vec<u8>, FetchError> {
        while self.buf.len() < max && self.fill().await? {}
        self.buf.truncate(max);
        Ok(std::mem::take(&mut self.buf))
    }

    /// A chunked body, of which the first `max` bytes are kept.
    async fn chunked(&mut self, max: usize) -> Result<Vec<u8>, FetchError> {
        let mut body = Vec::new();
        let mut decoder = Chunks::default();
        loop {
            let (used, done) = decoder.feed(&self.buf, &mut body, max)?;
            self.buf.drain(..used);
            if done || body.len() >= max {
                return Ok(body);
            }
            if !self.fill().await? {
                return Err(FetchError::new(
                    FailureClass::Other,
                    "the connection closed within a chunked body",
                ));
            }
        }
    }
}

/// A decoder of `Transfer-Encoding: chunked`, fed what has arrived.
#[derive(Debug, Default)]
pub struct Chunks {
    /// Bytes of data left in the current chunk; `None` between chunks.
    left: Option<usize>,
    /// After a chunk's data, its CRLF is due.
    crlf_due: bool,
}

/// Longest chunk-size line read.
const MAX_CHUNK_LINE: usize = 1024;

impl Chunks {
    /// Decodes from `input`, appending data to `out` (up to `max` bytes in
    /// all); returns the bytes of `input` used and whether the last chunk
    /// was reached.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(usize, bool), FetchError> {
        let bad =
            |what: &str| FetchError::new(FailureClass::Other, format!("chunked body: {what}"));
        let mut at = 0;
        loop {
            if self.crlf_due {
                if input.len() < at + 2 {
                    return Ok((at, false));
                }
                if &input[at..at + 2] != b"\r\n" {
                    return Err(bad("no CRLF after a chunk"));
                }
                at += 2;
                self.crlf_due = false;
            }
            match self.left {
                Some(0) => {
                    self.left = None;
                    self.crlf_due = true;
                }
                Some(n) => {
                    let take = n.min(input.len() - at);
                    if take == 0 {
                        return Ok((at, false));
                    }
                    let room = max.saturating_sub(out.len());
                    out.extend_from_slice(&input[at..at + take.min(room)]);
                    at += take;
                    self.left = Some(n - take);
                    if out.len() >= max {
                        return Ok((at, false));
                    }
                }
                None => {
                    let rest = &input[at..];
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_CHUNK_LINE {
                            return Err(bad("a chunk-size line too long"));
                        }
                        return Ok((at, false));
                    };
                    let line = std::str::from_utf8(&rest[..end])
                        .map_err(|_| bad("a chunk size that is not text"))?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| bad(&format!("chunk size {size:?} is not hexadecimal")))?;
                    at += end + 2;
                    if size == 0 {
                        // Trailers, if any, are not needed: the connection
                        // closes.
                        return Ok((at, true));
                    }
                    self.left = Some(size);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_when_complete() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").expect("ok"),
            None
        );
        let (head, len) =
            parse_head(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 3\r\n\r\nabc")
                .expect("ok")
                .expect("complete");
        assert_eq!(head.status, 302);
        assert_eq!(head.location.as_deref(), Some("/next"));
        assert_eq!(head.content_length, Some(3));
        assert_eq!(len, 58);
        let (head, _) = parse_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
        )
        .expect("ok")
        .expect("complete");
        assert!(head.chunked);
        assert_eq!(head.content_length, None);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .is_err()
        );
    }

    #[test]
    fn chunks_are_decoded_whatever_the_pieces() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for split in 0..body.len() {
            let mut d = Chunks::default();
            let mut out = Vec::new();
            let mut buf = body[..split].to_vec();
            let (used, mut done) = d.feed(&buf, &mut out, 1 << 20).expect("first part");
            if !done {
                buf.drain(..used);
                buf.extend_from_slice(&body[split..]);
                done = d.feed(&buf, &mut out, 1 << 20).expect("second part").1;
            }
            assert!(done, "split at {split}");
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.", "split at {split}");
        }
        let mut out = Vec::new();
        assert!(Chunks::default().feed(b"zz\r\n", &mut out, 10).is_err());
        assert!(Chunks::default().feed(b"2\r\nabXY", &mut out, 10).is_err());
        // Cut at the most kept.
        let mut out = Vec::new();
        let (_, done) = Chunks::default()
            .feed(b"a\r\n0123456789\r\n0\r\n\r\n", &mut out, 4)
            .expect("ok");
        assert!(!done);
        assert_eq!(out, b"0123");
    }

    #[test]
    fn the_request_names_host_agent_and_close_unless_told_otherwise() {
        let url: Url = "http://127.0.0.1:8080/health?deep=1".parse().expect("url");
        let head = String::from_utf8(request_head(&url, "GET", &[])).expect("text");
        assert!(head.starts_with("GET /health?deep=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(head.contains("User-Agent: aegis/"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        let headers = vec![
            ("host".to_string(), "example.org".to_string()),
            ("X-Token".to_string(), "t".to_string()),
            ("Connection".to_string(), "keep-alive".to_string()),
        ];
        let head = String::from_utf8(request_head(&url, "POST", &headers)).expect("text");
        assert!(!head.contains("Host: 127.0.0.1"), "{head}");
        assert!(head.contains("host: example.org\r\n"));
        assert!(head.contains("X-Token: t\r\n"));
        assert!(!head.contains("keep-alive"));
        assert!(head.contains("Content-Length: 0\r\n"));
        let url: Url = "http://ops:s%40cret@[::1]/".parse().expect("url");
        let head = String::from_utf8(request_head(&url, "GET", &[])).expect("text");
        assert!(head.contains("Host: [::1]\r\n"), "{head}");
        // base64("ops:s@cret")
        assert!(
            head.contains("Authorization: Basic b3BzOnNAY3JldA==\r\n"),
            "{head}"
        );
    }
}
