//! The receivers a configuration names, and `aegis notify test`: one test
//! message to each, each reply or the reason it failed.

use std::time::Duration;

use aegis_core::config::Config;
use aegis_core::Severity;
use aegis_notify::{Event, Message, Receiver};

/// Time allowed to one test delivery.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Every receiver of `config`: `notify.webhooks` (Alertmanager-compatible,
/// named `webhook-N`), then `[[notify.receivers]]`.
pub fn receivers(config: &Config) -> Result<Vec<Receiver>, String> {
    let n = &config.notify;
    let hooks = n.webhooks.iter().enumerate().map(|(i, hook)| {
        Ok(Receiver::alertmanager(
            format!("webhook-{i}"),
            hook.clone(),
            n.min_severity,
        ))
    });
    let others = n
        .receivers
        .iter()
        .map(|r| Receiver::from_config(r, n.min_severity));
    hooks.chain(others).collect()
}

/// The notifier's settings from `config`: its receivers, grouping, rate
/// limit and attempts.
pub fn notifier_config(config: &Config) -> Result<aegis_notify::NotifierConfig, String> {
    Ok(aegis_notify::NotifierConfig {
        receivers: receivers(config)?,
        group_wait: config.notify.group_wait.0,
        max_posts_per_minute: config.notify.max_posts_per_minute,
        attempts: config.notify.attempts,
        ..aegis_notify::NotifierConfig::default()
    })
}

/// How each test delivery ended, by receiver, in configuration order.
pub struct TestReport {
    /// `(receiver, kind, address, result)`.
    pub results: Vec<(String, &'static str, String, Result<String, String>)>,
}

impl TestReport {
    /// Whether every receiver took its message.
    pub fn all_delivered(&self) -> bool {
        self.results.iter().all(|r| r.3.is_ok())
    }

    /// One line per receiver.
    pub fn render(&self) -> String {
        self.results
            .iter()
            .map(|(name, kind, address, result)| match result {
                Ok(reply) => format!("ok      {name} ({kind}, {address}): {reply}"),
                Err(why) => format!("FAILED  {name} ({kind}, {address}): {why}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Sends one test message to each receiver of `config`, or to the one
/// named `only`, once (no retry: the answer is what an operator wants to
/// see), all at once.
pub async fn test(config: &Config, only: Option<&str>) -> anyhow::Result<TestReport> {
    let all = receivers(config).map_err(anyhow::Error::msg)?;
    if all.is_empty() {
        anyhow::bail!(
            "no receiver is configured: add notify.webhooks or [[notify.receivers]] to the configuration file"
        );
    }
    let chosen: Vec<Receiver> = match only {
        Some(name) => {
            let found: Vec<Receiver> = all.iter().filter(|r| r.name == name).cloned().collect();
            if found.is_empty() {
                let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
                anyhow::bail!(
                    "no receiver is named {name:?}; the configuration has {}",
                    names.join(", ")
                );
            }
            found
        }
        None => all,
    };
    let instance = aegis_notify::host_name();
    let client = reqwest::Client::builder()
        .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0);
    let mut set = tokio::task::JoinSet::new();
    for (i, r) in chosen.into_iter().enumerate() {
        let message = Message::new(
            format!("test:{}", r.name),
            Event::Test,
            Severity::Info,
            "AegisTest",
            format!("a test message from aegis on {instance}"),
            now,
        )
        .describe(format!(
            "Receiver {} works: this came from `aegis notify test`.",
            r.name
        ))
        .label("receiver", r.name.clone());
        let (client, instance) = (client.clone(), instance.clone());
        set.spawn(async move {
            let result = r
                .post(
                    &client,
                    std::slice::from_ref(&message),
                    &instance,
                    TEST_TIMEOUT,
                )
                .await;
            (i, (r.name.clone(), r.kind.as_str(), r.address(), result))
        });
    }
    let mut results = Vec::new();
    while let Some(done) = set.join_next().await {
        results.push(done?);
    }
    results.sort_by_key(|(i, _)| *i);
    Ok(TestReport {
        results: results.into_iter().map(|(_, r)| r).collect(),
    })
}
