//! A scriptable HTTP/1.1 stub server and a tiny blocking client, both on
//! plain threads so sync and async tests use them alike.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the stub received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
}

impl Recorded {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {}",
                self.method, self.path, self.body
            )
        })
    }
}

/// How the stub answers a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
    /// Content type.
    pub content_type: String,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// 200 with `body` as text.
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }

    /// `status` with `body` as text.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
            content_type: "text/plain".into(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with a JSON body.
    pub fn json(body: &serde_json::Value) -> Self {
        Self {
            content_type: "application/json".into(),
            ..Self::ok(&body.to_string())
        }
    }

    /// The same reply after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Default)]
struct Script {
    routes: HashMap<String, Reply>,
    fallback: Option<Reply>,
    seen: Vec<Recorded>,
}

/// A stub HTTP server on a free loopback port. Answers each path as
/// scripted (200 "ok" unless told otherwise), records every request, and
/// stops when dropped.
pub struct HttpStub {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    /// Every connection accepted, to cut when the stub goes (a stopped
    /// server answers nobody, kept-alive clients included).
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

fn lock(m: &Mutex<Script>) -> std::sync::MutexGuard<'_, Script> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl HttpStub {
    /// Starts a stub on a free port.
    pub fn start() -> HttpStub {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}")))
    }

    /// Starts a stub on `port` (a service that comes back where it was).
    pub fn start_on(port: u16) -> HttpStub {
        Self::serve(
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind {port}: {e}")),
        )
    }

    fn serve(listener: TcpListener) -> HttpStub {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let script = Arc::new(Mutex::new(Script::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (s, st, cs) = (Arc::clone(&script), Arc::clone(&stop), Arc::clone(&conns));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let (Ok(mut list), Ok(clone)) = (cs.lock(), conn.try_clone()) {
                    list.retain(|c| c.peer_addr().is_ok());
                    list.push(clone);
                }
                let (s, st) = (Arc::clone(&s), Arc::clone(&st));
                std::thread::spawn(move || serve(conn, &s, &st));
            }
        });
        HttpStub {
            addr,
            script,
            stop,
            conns,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `path` (without query) with `reply` from now on.
    pub fn on(&self, path: &str, reply: Reply) -> &Self {
        lock(&self.script).routes.insert(path.to_string(), reply);
        self
    }

    /// Answers every path not scripted with `reply`.
    pub fn otherwise(&self, reply: Reply) -> &Self {
        lock(&self.script).fallback = Some(reply);
        self
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.script).seen.clone()
    }

    /// The requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Ok(list) = self.conns.lock() {
            for c in list.iter() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

fn serve(conn: TcpStream, script: &Mutex<Script>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut writer = write_half;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return;
        };
        let (method, path) = (method.to_string(), path.to_string());
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len.min(16 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let close = headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let reply = {
            let mut s = lock(script);
            s.seen.push(Recorded {
                method,
                path: path.clone(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let route = path.split('?').next().unwrap_or(&path).to_string();
            s.routes
                .get(&route)
                .or(s.fallback.as_ref())
                .cloned()
                .unwrap_or_else(|| Reply::ok("ok"))
        };
        if !reply.delay.is_zero() {
            std::thread::sleep(reply.delay);
        }
        let head = format!(
            "HTTP/1.1 {} Stub\r\ncontent-type: {}\r\ncontent-length: {}\r\n{}\r\n",
            reply.status,
            reply.content_type,
            reply.body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        if writer.write_all(head.as_bytes()).is_err()
            || writer.write_all(reply.body.as_bytes()).is_err()
        {
            return;
        }
        if close {
            return;
        }
    }
}

/// A plain HTTP/1.1 GET: status code and (de-chunked) body; `(0, "")` when
/// nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, &[], "")
}

/// One request with `headers` and `body`: status code and (de-chunked)
/// body; `(0, "")` when nothing answers.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    if s.write_all(raw.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stub_answers_as_scripted_and_records_requests() {
        let stub = HttpStub::start();
        stub.on("/down", Reply::status(503, "no"));
        assert_eq!(http_get(stub.addr(), "/health?x=1"), (200, "ok".into()));
        assert_eq!(http_get(stub.addr(), "/down").0, 503);
        let (code, _) = http_request(
            stub.addr(),
            "POST",
            "/hook",
            &[("Content-Type", "application/json")],
            "[1]",
        );
        assert_eq!(code, 200);
        assert_eq!(stub.requests_to("/hook")[0].json(), serde_json::json!([1]));
        assert_eq!(stub.requests().len(), 3);
    }
}
