//! Every receiver kind, through the notifier, against local servers: each
//! payload is checked against what its service documents (the limits and
//! fields cited in `chat.rs` and `push.rs`), for a heal that failed and for
//! a recovery; email goes to a real SMTP server over STARTTLS with a login.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aegis_core::config::{ReceiverConfig, ReceiverKindName, SmtpTls};
use aegis_core::Severity;
use aegis_notify::{Event, Message, NotifierConfig, Receiver};
use aegis_testkit::{free_port, skip, wait_until, ChildGuard, HttpStub, Recorded, Reply};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A heal that failed, as the engine says it.
fn heal_failed() -> Message {
    Message::new(
        "incident:7",
        Event::HealFailed,
        Severity::Critical,
        "AegisHealingNeedsAPerson",
        "container_unhealthy on web was not healed",
        1_700_000_000_000,
    )
    .describe("the ladder is exhausted: restart did not make web healthy (\"unhealthy\" 3 times)")
    .label("target", "web")
    .label("symptom", "container_unhealthy")
    .label("incident", "7")
}

/// A recovery: the anomaly closed.
fn recovery() -> Message {
    Message::new(
        "anomaly:9",
        Event::Resolved,
        Severity::Warning,
        "AegisAnomaly",
        "warning spike on endpoint_latency_seconds/web ended",
        1_700_000_000_000,
    )
    .label("series", "endpoint_latency_seconds/web")
    .resolved_at(1_700_000_090_000)
}

fn receiver(name: &str, kind: ReceiverKindName, f: impl FnOnce(&mut ReceiverConfig)) -> Receiver {
    let mut c = ReceiverConfig::new(name.parse().expect("name"), kind);
    f(&mut c);
    Receiver::from_config(&c, Severity::Info).expect("receiver")
}

fn only_keys(v: &Value, allowed: &[&str], what: &str) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for k in o.keys() {
        assert!(
            allowed.contains(&k.as_str()),
            "{what}: undocumented field {k:?} in {v}"
        );
    }
}

fn string<'a>(v: &'a Value, key: &str, what: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{what}.{key} is not a string: {v}"))
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Slack's incoming webhook with attachments (Mattermost and Rocket.Chat
/// take the same).
fn slack_shape(v: &Value) -> String {
    only_keys(
        v,
        &[
            "text",
            "attachments",
            "blocks",
            "username",
            "icon_emoji",
            "icon_url",
            "channel",
            "mrkdwn",
            "thread_ts",
        ],
        "slack",
    );
    let text = string(v, "text", "slack");
    assert!(!text.is_empty());
    let attachments = v["attachments"].as_array().expect("attachments");
    assert!(!attachments.is_empty() && attachments.len() <= 100);
    for a in attachments {
        only_keys(
            a,
            &[
                "fallback",
                "color",
                "pretext",
                "author_name",
                "author_link",
                "author_icon",
                "title",
                "title_link",
                "text",
                "fields",
                "image_url",
                "thumb_url",
                "footer",
                "footer_icon",
                "ts",
                "mrkdwn_in",
            ],
            "attachment",
        );
        assert!(
            !string(a, "fallback", "attachment").is_empty(),
            "fallback is required"
        );
        let color = string(a, "color", "attachment");
        assert!(
            color.len() == 7
                && color.starts_with('#')
                && color[1..].chars().all(|c| c.is_ascii_hexdigit()),
            "color {color}"
        );
        string(a, "title", "attachment");
        string(a, "text", "attachment");
        assert!(a["ts"].is_i64(), "ts is an epoch integer: {a}");
        for f in a["fields"].as_array().expect("fields") {
            only_keys(f, &["title", "value", "short"], "field");
            string(f, "title", "field");
            string(f, "value", "field");
            assert!(f["short"].is_boolean());
        }
    }
    format!("{text}\n{}", attachments[0]["text"])
}

/// Discord's Execute Webhook, with its embed limits.
fn discord_shape(v: &Value) -> String {
    only_keys(
        v,
        &[
            "content",
            "username",
            "avatar_url",
            "tts",
            "embeds",
            "allowed_mentions",
            "components",
            "flags",
            "thread_name",
        ],
        "discord",
    );
    let content = string(v, "content", "discord");
    assert!(chars(content) <= 2_000);
    assert!(chars(string(v, "username", "discord")) <= 80);
    assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
    let embeds = v["embeds"].as_array().expect("embeds");
    assert!(!embeds.is_empty() && embeds.len() <= 10);
    let mut total = 0;
    for e in embeds {
        only_keys(
            e,
            &[
                "title",
                "type",
                "description",
                "url",
                "timestamp",
                "color",
                "footer",
                "image",
                "thumbnail",
                "video",
                "provider",
                "author",
                "fields",
            ],
            "embed",
        );
        let title = string(e, "title", "embed");
        let description = string(e, "description", "embed");
        assert!(chars(title) <= 256 && chars(description) <= 4_096);
        total += chars(title) + chars(description);
        let color = e["color"].as_u64().expect("color is an integer");
        assert!(color <= 0xFF_FF_FF);
        humantime::parse_rfc3339(string(e, "timestamp", "embed")).expect("ISO 8601 timestamp");
        let footer = string(&e["footer"], "text", "footer");
        assert!(chars(footer) <= 2_048);
        total += chars(footer);
        let fields = e["fields"].as_array().expect("fields");
        assert!(fields.len() <= 25);
        for f in fields {
            only_keys(f, &["name", "value", "inline"], "embed field");
            let (n, val) = (string(f, "name", "field"), string(f, "value", "field"));
            assert!(chars(n) <= 256 && chars(val) <= 1_024);
            total += chars(n) + chars(val);
        }
    }
    assert!(total <= 6_000, "embeds add up to {total} characters");
    format!("{content}\n{}", embeds[0]["description"])
}

fn walk_card(items: &Value, text: &mut String) {
    for item in items.as_array().expect("items") {
        match item["type"].as_str().expect("element type") {
            "TextBlock" => {
                only_keys(
                    item,
                    &[
                        "type",
                        "text",
                        "weight",
                        "size",
                        "wrap",
                        "color",
                        "isSubtle",
                        "separator",
                        "spacing",
                    ],
                    "TextBlock",
                );
                if let Some(c) = item.get("color") {
                    let c = c.as_str().expect("color");
                    assert!(
                        [
                            "Default",
                            "Dark",
                            "Light",
                            "Accent",
                            "Good",
                            "Warning",
                            "Attention"
                        ]
                        .contains(&c),
                        "color {c}"
                    );
                }
                text.push_str(item["text"].as_str().expect("text"));
                text.push('\n');
            }
            "FactSet" => {
                for f in item["facts"].as_array().expect("facts") {
                    only_keys(f, &["title", "value"], "fact");
                    text.push_str(&format!(
                        "{}: {}\n",
                        string(f, "title", "fact"),
                        string(f, "value", "fact")
                    ));
                }
            }
            "Container" => {
                only_keys(item, &["type", "items", "separator", "style"], "Container");
                walk_card(&item["items"], text);
            }
            other => panic!("element {other} is not one this card uses"),
        }
    }
}

/// An Adaptive Card in a Teams message.
fn teams_shape(v: &Value, raw: &str) -> String {
    assert!(raw.len() < 28 * 1024, "Teams takes at most 28 KB");
    only_keys(v, &["type", "attachments"], "teams");
    assert_eq!(v["type"], "message");
    let attachments = v["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    let a = &attachments[0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &a["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert!(string(card, "version", "card").starts_with("1."));
    let mut text = String::new();
    walk_card(&card["body"], &mut text);
    text
}

/// ntfy's JSON publishing.
fn ntfy_shape(v: &Value, topic: &str) -> String {
    only_keys(
        v,
        &[
            "topic", "message", "title", "tags", "priority", "actions", "click", "attach",
            "markdown", "icon", "filename", "delay", "email", "call",
        ],
        "ntfy",
    );
    assert_eq!(v["topic"], topic);
    let message = string(v, "message", "ntfy");
    assert!(message.len() <= 4_096, "longer messages become attachments");
    let p = v["priority"].as_u64().expect("priority");
    assert!((1..=5).contains(&p));
    assert!(v["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .all(Value::is_string));
    format!("{}\n{message}", string(v, "title", "ntfy"))
}

/// Gotify's `POST /message`.
fn gotify_shape(v: &Value) -> String {
    only_keys(v, &["title", "message", "priority", "extras"], "gotify");
    let message = string(v, "message", "gotify");
    assert!(!message.is_empty(), "message is required");
    assert!(v["priority"].is_i64());
    let display = &v["extras"]["client::display"]["contentType"];
    assert!(display == "text/plain" || display == "text/markdown");
    format!("{}\n{message}", string(v, "title", "gotify"))
}

const PATHS: [&str; 7] = [
    "/slack",
    "/discord",
    "/teams",
    "/ntfy",
    "/gotify/message",
    "/hook",
    "/am",
];

fn last(stub: &HttpStub, path: &str) -> Recorded {
    stub.requests_to(path).pop().expect("a request")
}

/// What each chat and push receiver's last post says, as text.
fn texts(stub: &HttpStub) -> Vec<(&'static str, String)> {
    let teams = last(stub, "/teams");
    vec![
        ("slack", slack_shape(&last(stub, "/slack").json())),
        ("discord", discord_shape(&last(stub, "/discord").json())),
        ("teams", teams_shape(&teams.json(), &teams.body)),
        (
            "ntfy",
            ntfy_shape(&last(stub, "/ntfy").json(), "ops_alerts"),
        ),
        (
            "gotify",
            gotify_shape(&last(stub, "/gotify/message").json()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_gets_its_documented_payload_for_a_failed_heal_and_a_recovery() {
    let stub = HttpStub::start();
    stub.on("/discord", Reply::status(204, ""));
    stub.on(
        "/gotify/message",
        Reply::json(&serde_json::json!({"id": 1})),
    );
    let url = |p: &str| Some(stub.url(p).parse().expect("url"));
    let receivers = vec![
        receiver("slack", ReceiverKindName::Slack, |c| c.url = url("/slack")),
        receiver("discord", ReceiverKindName::Discord, |c| {
            c.url = url("/discord")
        }),
        receiver("teams", ReceiverKindName::Teams, |c| c.url = url("/teams")),
        receiver("ntfy", ReceiverKindName::Ntfy, |c| {
            c.url = url("/ntfy");
            c.topic = Some("ops_alerts".into());
            c.token = Some(aegis_core::action::Secret("tk_ntfy".into()));
        }),
        receiver("gotify", ReceiverKindName::Gotify, |c| {
            c.url = url("/gotify/");
            c.token = Some(aegis_core::action::Secret("AppToken.1".into()));
        }),
        receiver("hook", ReceiverKindName::Webhook, |c| {
            c.url = url("/hook");
            c.body = Some(
                r#"{"alert": "{{name}}", "state": "{{event}}", "text": "{{summary}}", "why": "{{description}}", "target": "{{label.target}}", "labels": {{labels}}}"#
                    .parse()
                    .expect("template"),
            );
            c.headers = Some(BTreeMap::from([("X-Team".to_string(), "ops".to_string())]));
        }),
        receiver("am", ReceiverKindName::Alertmanager, |c| c.url = url("/am")),
    ];
    let (notifier, task) = aegis_notify::new(NotifierConfig {
        receivers,
        group_wait: Duration::from_millis(50),
        instance: "node-1".into(),
        ..NotifierConfig::default()
    });
    let cancel = CancellationToken::new();
    let run = tokio::spawn(task.run(cancel.clone()));
    let deliver = |m: Message, n: usize| {
        notifier.send(m);
        tokio::task::block_in_place(|| {
            wait_until(
                Duration::from_secs(20),
                "every receiver got its post",
                || PATHS.iter().all(|p| stub.requests_to(p).len() >= n),
            );
        });
        assert_eq!(notifier.summary().failed, 0, "{:?}", notifier.summary());
    };

    deliver(heal_failed(), 1);
    for (kind, text) in texts(&stub) {
        assert!(text.contains("HEAL FAILED"), "{kind}: {text}");
        assert!(
            text.contains("container_unhealthy on web was not healed"),
            "{kind}: {text}"
        );
        assert!(text.contains("the ladder is exhausted"), "{kind}: {text}");
        assert!(text.contains("node-1"), "{kind}: {text}");
    }
    let ntfy = last(&stub, "/ntfy");
    assert_eq!(
        ntfy.headers.get("authorization").map(String::as_str),
        Some("Bearer tk_ntfy")
    );
    assert_eq!(ntfy.json()["priority"], 5, "a failed heal is urgent");
    let gotify = last(&stub, "/gotify/message");
    assert_eq!(
        gotify.headers.get("x-gotify-key").map(String::as_str),
        Some("AppToken.1")
    );
    assert_eq!(gotify.json()["priority"], 8);
    assert_eq!(
        last(&stub, "/discord").json()["embeds"][0]["color"],
        0xD0_00_00
    );
    let hook = last(&stub, "/hook");
    assert_eq!(hook.headers.get("x-team").map(String::as_str), Some("ops"));
    assert_eq!(
        hook.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let h = hook.json();
    assert_eq!(h["alert"], "AegisHealingNeedsAPerson");
    assert_eq!(h["state"], "heal_failed");
    assert_eq!(h["target"], "web");
    assert_eq!(h["labels"]["symptom"], "container_unhealthy");
    assert!(
        h["why"]
            .as_str()
            .expect("why")
            .contains("(\"unhealthy\" 3 times)"),
        "quotes survive: {h}"
    );
    let am = last(&stub, "/am").json();
    assert_eq!(am[0]["labels"]["alertname"], "AegisHealingNeedsAPerson");
    assert!(am[0].get("endsAt").is_none());

    deliver(recovery(), 2);
    for (kind, text) in texts(&stub) {
        assert!(text.contains("RESOLVED"), "{kind}: {text}");
        assert!(
            text.contains("endpoint_latency_seconds/web"),
            "{kind}: {text}"
        );
        assert!(
            !text.contains("HEAL FAILED"),
            "{kind} repeats the earlier message: {text}"
        );
    }
    assert_eq!(last(&stub, "/ntfy").json()["priority"], 3);
    assert_eq!(
        last(&stub, "/discord").json()["embeds"][0]["color"],
        0x2E_B6_7D
    );
    assert_eq!(last(&stub, "/hook").json()["state"], "resolved");
    assert!(last(&stub, "/am").json()[0]["endsAt"].is_string());
    let summary = notifier.summary();
    assert_eq!(summary.delivered, 14);
    for r in &summary.receivers {
        assert_eq!((r.delivered, r.failed), (2, 0), "{r:?}");
    }
    cancel.cancel();
    run.await.expect("notifier task");
}

#[tokio::test]
async fn a_large_batch_is_split_within_each_services_limits() {
    let stub = HttpStub::start();
    let batch: Vec<Message> = (0..35)
        .map(|i| {
            Message::new(
                format!("anomaly:{i}"),
                Event::Opened,
                Severity::Warning,
                "AegisAnomaly",
                format!("spike {i} on a series with a long name {}", "x".repeat(300)),
                1_700_000_000_000,
            )
            .describe("d".repeat(5_000))
        })
        .collect();
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/slack", ReceiverKindName::Slack),
        ("/discord", ReceiverKindName::Discord),
        ("/teams", ReceiverKindName::Teams),
    ] {
        let r = receiver(&path[1..], kind, |c| {
            c.url = Some(stub.url(path).parse().expect("url"))
        });
        r.post(&client, &batch, "node-1", Duration::from_secs(10))
            .await
            .expect("posted");
        let posts = stub.requests_to(path);
        assert!(
            posts.len() >= 2,
            "{path}: 35 messages fit in {} post(s)",
            posts.len()
        );
        let mut seen = 0;
        for p in &posts {
            let v = p.json();
            match kind {
                ReceiverKindName::Slack => {
                    slack_shape(&v);
                    seen += v["attachments"].as_array().map_or(0, Vec::len);
                }
                ReceiverKindName::Discord => {
                    discord_shape(&v);
                    seen += v["embeds"].as_array().map_or(0, Vec::len);
                }
                _ => {
                    teams_shape(&v, &p.body);
                    seen += v["attachments"][0]["content"]["body"]
                        .as_array()
                        .map_or(0, |b| b.len() - 1);
                }
            }
        }
        assert_eq!(seen, 35, "{path}: every message is told once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_receivers_take_effect_without_a_restart_and_unchanged_ones_keep_their_messages() {
    let stub = HttpStub::start();
    let slack = |name: &str, min: Severity| {
        let mut c = ReceiverConfig::new(name.parse().expect("name"), ReceiverKindName::Slack);
        c.url = Some(stub.url(&format!("/{name}")).parse().expect("url"));
        Receiver::from_config(&c, min).expect("receiver")
    };
    // Long enough that a reload right after a message finds it waiting.
    let config = |receivers: Vec<Receiver>| NotifierConfig {
        receivers,
        group_wait: Duration::from_secs(1),
        ..NotifierConfig::default()
    };
    let cancel = CancellationToken::new();
    let (notifier, task) = aegis_notify::new(config(vec![slack("ops", Severity::Info)]));
    let running = tokio::spawn(task.run(cancel.clone()));

    // A message waits in its group for `ops` while the receivers change:
    // `ops` is unchanged and keeps it, `pager` is new.
    notifier.send(heal_failed());
    let done = notifier
        .reconfigure(config(vec![
            slack("ops", Severity::Info),
            slack("pager", Severity::Critical),
        ]))
        .await
        .expect("reconfigured");
    assert_eq!(done.added, vec!["pager".to_string()]);
    assert_eq!((done.kept, done.dropped), (1, 0));
    assert!(done.removed.is_empty());
    wait_until(Duration::from_secs(10), "ops's message", || {
        !stub.requests_to("/ops").is_empty()
    });
    notifier.send(Message {
        severity: Severity::Critical,
        ..recovery()
    });
    wait_until(Duration::from_secs(10), "both receivers told", || {
        stub.requests_to("/ops").len() == 2 && stub.requests_to("/pager").len() == 1
    });

    // `ops` goes, with what waits for it; `pager` changes (a new minimum
    // severity): it starts empty.
    notifier.send(heal_failed());
    let done = notifier
        .reconfigure(config(vec![slack("pager", Severity::Info)]))
        .await
        .expect("reconfigured");
    assert_eq!(done.removed, vec!["ops".to_string()]);
    assert_eq!(done.added, vec!["pager".to_string()]);
    assert_eq!((done.kept, done.dropped), (0, 2));
    let summary = notifier.summary();
    let names: Vec<&str> = summary.receivers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["pager"]);
    notifier.send(recovery());
    wait_until(Duration::from_secs(10), "the changed receiver told", || {
        stub.requests_to("/pager").len() == 2
    });
    assert_eq!(
        stub.requests_to("/ops").len(),
        2,
        "a removed receiver was told"
    );
    cancel.cancel();
    running.await.expect("the notifier stopped");
}

/// The first `python3` that has aiosmtpd.
fn python_with_aiosmtpd() -> Option<PathBuf> {
    ["python3", "/usr/bin/python3"].iter().find_map(|p| {
        let ok = Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| PathBuf::from(p))
    })
}

/// A real SMTP server (aiosmtpd) that requires STARTTLS and a login, and
/// keeps each email it accepts as a JSON file.
const SMTP_SERVER: &str = r#"
import json, os, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, cert, key, user, password = sys.argv[1:7]

class Store:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith(".json")])
        path = os.path.join(out, "%d.json" % n)
        with open(path + ".tmp", "w") as f:
            json.dump({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": session.authenticated,
            }, f)
        os.rename(path + ".tmp", path)
        return "250 OK stored as %d" % n

def login(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok, handled=False)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
c = Controller(Store(), hostname="127.0.0.1", port=int(port), tls_context=tls,
               require_starttls=True, authenticator=login, auth_require_tls=True)
c.start()
threading.Event().wait()
"#;

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("ca");
    std::fs::write(&paths.1, leaf.pem()).expect("cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("key");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server_over_starttls_with_a_login() {
    let Some(python) = python_with_aiosmtpd() else {
        skip("python3 with aiosmtpd (python3-aiosmtpd; scripts/test.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(dir.path());
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).expect("mail dir");
    let script = dir.path().join("smtp.py");
    std::fs::write(&script, SMTP_SERVER).expect("script");
    let port = free_port();
    let _server = ChildGuard::spawn(
        Command::new(&python)
            .arg(&script)
            .arg(&out)
            .arg(port.to_string())
            .arg(&cert)
            .arg(&key)
            .args(["aegis", "s3cret pass"]),
    )
    .expect("smtp server");
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), "the SMTP server listens", || {
            aegis_testkit::accepts(([127, 0, 0, 1], port).into())
        });
    });
    let email = |password: &str| {
        receiver("mail", ReceiverKindName::Email, |c| {
            c.smtp = Some(format!("127.0.0.1:{port}").parse().expect("smtp"));
            c.from = Some("aegis@node-1.example".into());
            c.to = Some(vec!["ops@example.com".into(), "oncall@example.com".into()]);
            c.tls = Some(SmtpTls::Starttls);
            c.username = Some("aegis".into());
            c.password = Some(aegis_core::action::Secret(password.into()));
            c.ca_file = Some(ca.clone());
        })
    };
    let client = reqwest::Client::new();
    let timeout = Duration::from_secs(20);
    let reply = email("s3cret pass")
        .post(&client, &[heal_failed()], "node-1", timeout)
        .await
        .expect("sent");
    assert!(reply.contains("250"), "{reply}");
    email("s3cret pass")
        .post(&client, &[recovery()], "node-1", timeout)
        .await
        .expect("sent");
    let wrong = email("wrong")
        .post(&client, &[recovery()], "node-1", timeout)
        .await
        .expect_err("a wrong password is refused");
    assert!(wrong.contains("smtp://127.0.0.1"), "{wrong}");

    let read = |n: usize| -> Value {
        let path = out.join(format!("{n}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).expect("mail")).expect("json")
    };
    let first = read(0);
    assert_eq!(first["from"], "aegis@node-1.example");
    assert_eq!(
        first["to"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(first["tls"], true);
    assert_eq!(first["login"], true);
    let data = first["data"].as_str().expect("data");
    let unfolded = data.replace("\r\n ", " ");
    assert!(
        unfolded.contains(
            "Subject: [aegis] HEAL FAILED [critical] container_unhealthy on web was not healed"
        ),
        "{data}"
    );
    assert!(data.contains("the ladder is exhausted"), "{data}");
    assert!(data.contains("host: node-1"), "{data}");
    let second = read(1);
    let data = second["data"].as_str().expect("data").replace("\r\n ", " ");
    assert!(
        data.contains(
            "Subject: [aegis] RESOLVED warning spike on endpoint_latency_seconds/web ended"
        ),
        "{data}"
    );
    assert!(data.contains("ended: 2023-11-14T22:14:50"), "{data}");
    assert!(
        !out.join("2.json").exists(),
        "the refused login sent nothing"
    );
}
