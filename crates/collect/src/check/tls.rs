//! `tls` checks: a TLS handshake against `address`; the certificate must
//! verify (the system's authorities, plus `ca_file`) for `server_name` and
//! hold for at least `min_days` more days. The days left are the value,
//! and the series `tls_certificate_days_left`.

use std::sync::Arc;
use std::time::Duration;

use aegis_core::check::{CheckOutcome, FailureClass};
use aegis_core::config::{CheckConfig, DEFAULT_MIN_DAYS};
use aegis_core::{Family, Observation, SeriesKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::fetch::provider;
use super::Run;

/// Days until the certificate expires.
pub static TLS_DAYS_LEFT: Family = Family {
    name: "tls_certificate_days_left",
    help: "Days until the endpoint's certificate expires.",
    label: Some("endpoint"),
};

/// A TLS check's probe.
pub struct TlsProbe {
    name: String,
    address: String,
    server_name: ServerName<'static>,
    min_days: u32,
    connector: TlsConnector,
}

impl TlsProbe {
    /// The probe of a validated `tls` check: the trusted authorities are
    /// read once, here.
    pub fn new(c: &CheckConfig) -> Result<Self, String> {
        let address = c.address.as_ref().ok_or("a tls check needs an address")?;
        let name = c
            .server_name
            .clone()
            .unwrap_or_else(|| address.host().to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| format!("{name:?} is not a server name: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &c.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            name: c.name.to_string(),
            address: address.to_string(),
            server_name,
            min_days: c.min_days.unwrap_or(DEFAULT_MIN_DAYS),
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Handshakes within `timeout` and judges the certificate at `at_ms`.
    pub async fn run(&mut self, timeout: Duration, at_ms: i64) -> Run {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(timeout, self.handshake()).await;
        let (outcome, days) = match result {
            Err(_) => (
                CheckOutcome::failed(
                    FailureClass::Timeout,
                    format!("no TLS handshake with {} within {timeout:?}", self.address),
                ),
                None,
            ),
            Ok(Err(outcome)) => (outcome, None),
            Ok(Ok(not_after)) => {
                let days = (not_after - at_ms as f64 / 1000.0) / 86_400.0;
                let outcome = if days < f64::from(self.min_days) {
                    CheckOutcome::failed(
                        FailureClass::Expiring,
                        format!(
                            "the certificate of {} expires in {days:.1} days (fewer than {})",
                            self.address, self.min_days
                        ),
                    )
                } else {
                    CheckOutcome::Passed
                };
                (outcome, Some(days))
            }
        };
        let observations = days
            .map(|d| {
                vec![Observation::value(
                    SeriesKey::instance(&TLS_DAYS_LEFT, self.name.as_str()),
                    at_ms,
                    d,
                )]
            })
            .unwrap_or_default();
        Run {
            latency: days.map(|_| started.elapsed()),
            outcome,
            value: days,
            observations,
        }
    }

    /// The verified certificate's end of validity (Unix seconds).
    async fn handshake(&self) -> Result<f64, CheckOutcome> {
        let tcp = TcpStream::connect(&self.address).await.map_err(|e| {
            let class = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                FailureClass::Refused
            } else {
                FailureClass::Other
            };
            CheckOutcome::failed(class, format!("connecting to {}: {e}", self.address))
        })?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                CheckOutcome::failed(FailureClass::Tls, format!("TLS with {}: {e}", self.address))
            })?;
        let (_, conn) = tls.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| {
                CheckOutcome::failed(FailureClass::Tls, "no certificate was presented")
            })?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
            CheckOutcome::failed(
                FailureClass::Tls,
                format!("the certificate does not parse: {e}"),
            )
        })?;
        Ok(cert.validity().not_after.timestamp() as f64)
    }
}
