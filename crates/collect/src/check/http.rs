//! `http` checks: a request, and what its answer must be (status range,
//! text in the body, a JSON field). Each run also feeds the endpoint's
//! series: `endpoint_up`, `endpoint_latency_seconds` and
//! `endpoint_success_ratio` (over the last 20 runs).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, HttpMethod, JsonPointer, StatusRange};
use aegis_core::{Family, Observation, SeriesKey};

use super::fetch::{fetch, Ask, TlsSettings};
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
    /// The check's name, shared by every key of its series: equal keys
    /// then compare by pointer wherever they are looked up.
    name: Arc<str>,
    spec: HttpSpec,
    url: url::Url,
    tls: Option<(TlsSettings, bool)>,
    recent: VecDeque<bool>,
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
        let written = c.url.as_ref().ok_or("an http check needs a url")?;
        let url: url::Url = written
            .as_str()
            .parse()
            .map_err(|e| format!("url {:?}: {e}", written.as_str()))?;
        let tls = if written.is_https() {
            Some((TlsSettings::shared()?, c.tls_verify.unwrap_or(true)))
        } else {
            None
        };
        Ok(Self {
            name: Arc::from(c.name.as_str()),
            url,
            tls,
            spec: HttpSpec {
                url: written.to_string(),
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
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
        };
        let ask = Ask {
            method,
            headers: &self.spec.headers,
            max_body: MAX_BODY,
        };
        let tls = self.tls.as_ref().map(|(s, verify)| (s, *verify));
        match fetch(&self.url, &ask, tls, timeout).await {
            Ok(answer) => {
                let latency = Some(started.elapsed());
                let body = String::from_utf8_lossy(&answer.body);
                (judge(&self.spec, answer.status, &body), latency)
            }
            Err(e) => (CheckOutcome::failed(e.class, e.message), None),
        }
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
        let key = |f: &'static Family| SeriesKey::instance(f, Arc::clone(&self.name));
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
