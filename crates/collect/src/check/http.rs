//! `http` checks: a request, and what its answer must be (status range,
//! text in the body, a JSON field). Each run also feeds the endpoint's
//! series: `endpoint_up`, `endpoint_latency_seconds` and
//! `endpoint_success_ratio` (over the last 20 runs).

use std::collections::VecDeque;
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, HttpMethod, JsonPointer, StatusRange};
use aegis_core::{Family, Observation, SeriesKey};

use super::Run;

/// 1 when the endpoint's last run passed.
pub static ENDPOINT_UP: Family = Family {
    name: "endpoint_up",
    help: "1 when the endpoint's last check passed, else 0.",
    label: Some("endpoint"),
};
/// Latency of the last answered run.
pub static ENDPOINT_LATENCY: Family = Family {
    name: "endpoint_latency_seconds",
    help: "Time to the endpoint's full answer, in seconds.",
    label: Some("endpoint"),
};
/// Success over the last 20 runs.
pub static ENDPOINT_SUCCESS: Family = Family {
    name: "endpoint_success_ratio",
    help: "Share of the endpoint's last 20 checks that passed (0-1).",
    label: Some("endpoint"),
};

/// Every family HTTP checks emit.
pub static HTTP_FAMILIES: &[&Family] = &[&ENDPOINT_UP, &ENDPOINT_LATENCY, &ENDPOINT_SUCCESS];

/// Runs over which the success ratio is computed.
const RATIO_WINDOW: usize = 20;

/// What an HTTP check asks and expects.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// The URL.
    pub url: String,
    /// The method.
    pub method: HttpMethod,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Accepted statuses.
    pub expect_status: StatusRange,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// A JSON field and the text its value must be.
    pub json: Option<(JsonPointer, String)>,
}

/// An HTTP check's probe.
pub struct HttpProbe {
    name: String,
    spec: HttpSpec,
    client: reqwest::Client,
    recent: VecDeque<bool>,
}

/// The HTTP client every check shares (one verifying TLS, one not): a
/// client carries its TLS roots and connection pool, and one per check cost
/// about 150 KiB each with hundreds of checks.
pub fn shared_client(verify: bool) -> Result<reqwest::Client, String> {
    static VERIFYING: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    static TRUSTING: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    let cell = if verify { &VERIFYING } else { &TRUSTING };
    cell.get_or_init(|| client(verify)).clone()
}

/// An HTTP client for checks: no redirects followed silently beyond a few,
/// the agent's user agent, TLS verified unless `verify` is false, and a new
/// connection for every request, as the kubelet's probes do: a check that
/// reuses a kept-alive connection would not see a server that stopped
/// accepting new ones (and a pool is bound to the runtime that filled it).
pub fn client(verify: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(!verify)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// The error and its causes, in one line.
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn classify(e: &reqwest::Error) -> FailureClass {
    if e.is_timeout() {
        return FailureClass::Timeout;
    }
    // reqwest does not type these apart; its error chain names them.
    let lower = error_text(e).to_ascii_lowercase();
    if lower.contains("connection refused") {
        FailureClass::Refused
    } else if lower.contains("dns")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        FailureClass::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        FailureClass::Tls
    } else {
        FailureClass::Other
    }
}

/// Judges an answer: its status and body against what is expected.
pub fn judge(spec: &HttpSpec, status: u16, body: &str) -> CheckOutcome {
    if !spec.expect_status.contains(status) {
        return CheckOutcome::failed(
            FailureClass::BadStatus,
            format!("status {status}, expected {}", spec.expect_status),
        );
    }
    if let Some(needle) = &spec.body_contains {
        if !body.contains(needle.as_str()) {
            return CheckOutcome::failed(
                FailureClass::BodyMismatch,
                format!("the body lacks {needle:?}"),
            );
        }
    }
    if let Some((pointer, expected)) = &spec.json {
        let found = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.pointer(pointer.as_str()).cloned());
        let text = match &found {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        if text.as_deref() != Some(expected.as_str()) {
            return CheckOutcome::failed(
                FailureClass::BodyMismatch,
                format!(
                    "{pointer} is {}, expected {expected:?}",
                    text.map_or("absent".to_string(), |t| format!("{t:?}"))
                ),
            );
        }
    }
    CheckOutcome::Passed
}

/// Most bytes of a body read for judging.
const MAX_BODY: usize = 1 << 20;

impl HttpProbe {
    /// The probe of a validated `http` check.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        let url = c.url.as_ref().ok_or("an http check needs a url")?;
        Ok(Self {
            name: c.name.to_string(),
            client: shared_client(c.tls_verify.unwrap_or(true))?,
            spec: HttpSpec {
                url: url.to_string(),
                method: c.method.unwrap_or_default(),
                headers: c.headers.clone().unwrap_or_default().into_iter().collect(),
                expect_status: c.expect_status.unwrap_or_default(),
                body_contains: c.body_contains.clone(),
                json: c.json_pointer.clone().zip(c.json_equals.clone()),
            },
            recent: VecDeque::with_capacity(RATIO_WINDOW),
        })
    }

    /// One request within `timeout`.
    pub async fn request(&self, timeout: Duration) -> (CheckOutcome, Option<Duration>) {
        let started = tokio::time::Instant::now();
        let method = match self.spec.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
        };
        let mut request = self.client.request(method, &self.spec.url).timeout(timeout);
        for (k, v) in &self.spec.headers {
            request = request.header(k, v);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return (CheckOutcome::failed(classify(&e), error_text(&e)), None),
        };
        let status = response.status().as_u16();
        let left = timeout.saturating_sub(started.elapsed());
        let body = match tokio::time::timeout(left, read_body(response)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return (CheckOutcome::failed(classify(&e), error_text(&e)), None),
            Err(_) => {
                return (
                    CheckOutcome::failed(
                        FailureClass::Timeout,
                        format!("no full answer within {timeout:?}"),
                    ),
                    None,
                )
            }
        };
        let latency = Some(started.elapsed());
        (judge(&self.spec, status, &body), latency)
    }

    /// Runs once and feeds the endpoint's series.
    pub async fn run(&mut self, timeout: Duration, at_ms: i64) -> Run {
        let (outcome, latency) = self.request(timeout).await;
        let ok = outcome.ok() == Some(true);
        if self.recent.len() == RATIO_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(ok);
        let ratio = self.recent.iter().filter(|x| **x).count() as f64 / self.recent.len() as f64;
        let key = |f: &'static Family| SeriesKey::instance(f, self.name.as_str());
        let mut observations = vec![
            Observation::value(key(&ENDPOINT_UP), at_ms, f64::from(u8::from(ok))),
            Observation::value(key(&ENDPOINT_SUCCESS), at_ms, ratio),
        ];
        if let Some(l) = latency {
            observations.push(Observation::value(
                key(&ENDPOINT_LATENCY),
                at_ms,
                l.as_secs_f64(),
            ));
        }
        Run {
            outcome,
            latency,
            value: None,
            observations,
        }
    }
}

/// Reads at most [`MAX_BODY`] bytes of the body, as text.
async fn read_body(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HttpSpec {
        HttpSpec {
            url: "http://x/".into(),
            method: HttpMethod::Get,
            headers: Vec::new(),
            expect_status: "200-299".parse().expect("range"),
            body_contains: None,
            json: None,
        }
    }

    #[test]
    fn status_body_and_json_are_judged() {
        assert_eq!(judge(&spec(), 200, ""), CheckOutcome::Passed);
        assert_eq!(
            judge(&spec(), 503, "").class(),
            Some(FailureClass::BadStatus)
        );
        let mut s = spec();
        s.body_contains = Some("READY".into());
        assert_eq!(
            judge(&s, 200, "not yet").class(),
            Some(FailureClass::BodyMismatch)
        );
        let mut s = spec();
        s.json = Some(("/checks/db".parse().expect("pointer"), "true".into()));
        assert_eq!(
            judge(&s, 200, r#"{"checks":{"db":true}}"#),
            CheckOutcome::Passed
        );
        assert_eq!(
            judge(&s, 200, r#"{"checks":{"db":false}}"#).class(),
            Some(FailureClass::BodyMismatch)
        );
        assert_eq!(
            judge(&s, 200, "not json").class(),
            Some(FailureClass::BodyMismatch)
        );
    }
}
