//! Receivers through the real binary: `aegis notify test` reports each
//! receiver's reply or why it failed, and the agent tells each receiver
//! only the events it chose.

mod common;

use std::time::Duration;

use aegis_testkit::{free_port, HttpStub, Reply};
use common::{aegis, http_get, Agent};

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("aegis.toml");
    std::fs::write(&path, text).expect("config");
    path
}

#[test]
fn notify_test_prints_each_reply_and_fails_on_a_refused_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stub = HttpStub::start();
    stub.on(
        "/",
        Reply::json(&serde_json::json!({"id": "abc", "event": "message"})),
    );
    // Nothing listens on this port: the connection is refused.
    let dead = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[[notify.receivers]]\nname = \"phone\"\nkind = \"ntfy\"\nurl = \"{}\"\ntopic = \"ops\"\n\n\
             [[notify.receivers]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{dead}/hook\"\n",
            stub.url("/")
        ),
    );
    let run = |extra: &[&str]| {
        aegis(dir.path())
            .args(["notify", "test", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .expect("aegis notify test")
    };

    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let phone = stdout
        .lines()
        .find(|l| l.contains("phone"))
        .unwrap_or_else(|| panic!("no line for phone: {stdout}"));
    assert!(phone.starts_with("ok "), "{phone}");
    let chat = stdout
        .lines()
        .find(|l| l.contains("chat"))
        .unwrap_or_else(|| panic!("no line for chat: {stdout}"));
    assert!(chat.starts_with("FAILED "), "{chat}");
    assert!(chat.contains(&format!("127.0.0.1:{dead}")), "{chat}");
    assert!(
        chat.to_lowercase().contains("connection refused"),
        "the reason is named: {chat}"
    );
    let posts = stub.requests_to("/");
    assert_eq!(posts.len(), 1);
    let body = posts[0].json();
    assert_eq!(body["topic"], "ops");
    assert!(
        body["title"].as_str().expect("title").starts_with("TEST "),
        "{body}"
    );

    // One receiver alone: it works, so the command succeeds.
    let out = run(&["--receiver", "phone"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stub.requests_to("/").len(), 2);

    // A name that is not there says which ones are.
    let out = run(&["--receiver", "nope"]);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("phone, chat"),
        "{stderr}"
    );
}

#[test]
fn a_bad_receiver_is_a_configuration_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |text: &str, expected: &[&str]| {
        let config = write_config(dir.path(), text);
        let out = aegis(dir.path())
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("aegis check-config");
        assert_eq!(out.status.code(), Some(78));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for e in expected {
            assert!(stderr.contains(e), "{e:?} in {stderr}");
        }
    };
    check(
        "[[notify.receivers]]\nname = \"mail\"\nkind = \"email\"\nsmtp = \"127.0.0.1:25\"\nfrom = \"aegis@example.com\"\nto = [\"not an address\"]\ntopic = \"x\"\n",
        &[
            "aegis.toml:6:",
            "notify.receivers.0.to.0",
            "is not an email address",
            "aegis.toml:7:",
            "notify.receivers.0.topic",
            "topic does not belong to a receiver of kind email",
        ],
    );
    check(
        "[[notify.receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\nbody = '{\"t\": \"{{sumary}}\"}'\n",
        &["aegis.toml:5:", "unknown placeholder {{sumary}}"],
    );
    check(
        "[[notify.receivers]]\nname = \"hook\"\nkind = \"gotify\"\nurl = \"http://127.0.0.1:1/\"\n",
        &[
            "notify.receivers.0.token",
            "a receiver of kind gotify needs token",
        ],
    );
}

#[test]
fn the_agent_tells_each_receiver_the_events_it_chose() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chat = HttpStub::start();
    let pager = HttpStub::start();
    let dead = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[notify]\ngroup_wait = \"100ms\"\n\n\
             [[notify.receivers]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}\"\nevents = [\"check_failing\", \"check_passing\"]\n\n\
             [[notify.receivers]]\nname = \"pager\"\nkind = \"discord\"\nurl = \"{}\"\nevents = [\"heal_failed\"]\n\n\
             [[checks]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{dead}\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfailure_threshold = 2\n",
            chat.url("/hook"),
            pager.url("/hook"),
        ),
    );
    let agent = Agent::start_in(dir.path(), &["--config", config.to_str().expect("utf8")]);
    aegis_testkit::wait_until(
        Duration::from_secs(30),
        "the chat receiver hears the check fail",
        || !chat.requests_to("/hook").is_empty(),
    );
    let post = chat.requests_to("/hook")[0].json();
    let text = post["text"].as_str().expect("text");
    assert!(
        text.starts_with("FAILING [warning] check web is failing"),
        "{post}"
    );
    assert!(
        pager.requests().is_empty(),
        "the pager chose heal_failed only"
    );
    let mut metrics = String::new();
    aegis_testkit::wait_until(Duration::from_secs(10), "the delivery is counted", || {
        metrics = http_get(agent.api, "/metrics").1;
        metrics.contains(
            "aegis_notify_receiver_posts_total{receiver=\"chat\",kind=\"slack\",result=\"delivered\"} 1",
        )
    });
    assert!(
        metrics.contains(
            "aegis_notify_receiver_posts_total{receiver=\"pager\",kind=\"discord\",result=\"delivered\"} 0"
        ),
        "{metrics}"
    );
}
