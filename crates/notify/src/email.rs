//! Email over SMTP: one plain-text email per batch, through STARTTLS
//! (default), TLS from the first byte or, for a relay on this host, no TLS;
//! with a login when a username is given (PLAIN or LOGIN, whichever the
//! server offers; RFC 4954). The subject is the batch's title.

use std::path::PathBuf;
use std::time::Duration;

use aegis_core::action::Secret;
use aegis_core::config::{HostPort, SmtpTls};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::message::Message;
use crate::text::{batch_text, batch_title, clip};

/// Where and how an email receiver sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The SMTP server.
    pub smtp: HostPort,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// Login and password.
    pub login: Option<(String, Secret)>,
    /// Certificate authorities to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl Email {
    /// Where it sends, for messages: `smtp://host:port`.
    pub fn address(&self) -> String {
        format!("smtp://{}", self.smtp.as_str())
    }

    /// Sends `batch` as one email within `timeout`; the server's reply, or
    /// why it failed.
    pub async fn send(
        &self,
        batch: &[Message],
        instance: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let at = self.address();
        let mail = self.mail(batch, instance)?;
        let transport = self.transport(timeout)?;
        match tokio::time::timeout(timeout, transport.send(mail)).await {
            Ok(Ok(reply)) => Ok(format!(
                "email to {} accepted by {at}: {} {}",
                self.to.join(", "),
                reply.code(),
                reply.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) => Err(format!("sending email through {at}: {}", chain(&e))),
            Err(_) => Err(format!(
                "sending email through {at}: no answer within {}",
                humantime::format_duration(timeout)
            )),
        }
    }

    fn mail(&self, batch: &[Message], instance: &str) -> Result<lettre::Message, String> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("the sender {:?}: {e}", self.from))?;
        let mut b = lettre::Message::builder()
            .from(from)
            .subject(clip(
                &format!("[aegis] {}", batch_title(batch, instance)),
                200,
            ))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| format!("the recipient {to:?}: {e}"))?;
            b = b.to(mailbox);
        }
        b.body(batch_text(batch, instance))
            .map_err(|e| format!("building the email: {e}"))
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let host = self.smtp.host().to_string();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(self.smtp.port())
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(crate::host_name()));
        let tls = |host: &str| -> Result<TlsParameters, String> {
            let mut params = TlsParameters::builder(host.to_string());
            if let Some(path) = &self.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            params
                .build_rustls()
                .map_err(|e| format!("setting up TLS to {host}: {}", chain(&e)))
        };
        builder = match self.tls {
            SmtpTls::Starttls => builder.tls(Tls::Required(tls(&host)?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(&host)?)),
            SmtpTls::None => builder.tls(Tls::None),
        };
        if let Some((user, password)) = &self.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
        }
        Ok(builder.build())
    }
}

/// An error and its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
