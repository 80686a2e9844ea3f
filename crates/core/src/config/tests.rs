use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn problems(text: &str) -> Vec<(Option<usize>, String)> {
    Config::from_toml(text)
        .expect_err("problems")
        .problems
        .into_iter()
        .map(|p| (p.line, p.field))
        .collect()
}

#[test]
fn empty_file_gives_the_defaults() {
    assert_eq!(Config::from_toml(""), Ok(Config::default()));
}

#[test]
fn the_commented_default_file_parses_to_the_defaults() {
    assert_eq!(Config::from_toml(DEFAULT_TOML), Ok(Config::default()));
}

#[test]
fn the_default_file_shows_every_default_value() {
    // Uncommenting every `# key = value` line must still give the defaults:
    // the file documents the real values, not stale ones.
    let uncommented: String = DEFAULT_TOML
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.contains(" = ")
                    && !rest.starts_with("state_dir")
                    && !rest.starts_with("path")
                    && !rest.starts_with("token") =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(Config::from_toml(&uncommented), Ok(Config::default()));
}

#[test]
fn the_examples_of_the_default_file_are_valid() {
    // Lines marked `##` are examples: uncommented, they must load.
    let examples: String = DEFAULT_TOML
        .lines()
        .map(|l| l.strip_prefix("## ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    if let Err(e) = Config::from_toml(&examples) {
        panic!("the examples of aegis init do not load:\n{e}");
    }
}

#[test]
fn durations_and_sizes_parse_with_units() {
    let cfg = Config::from_toml(
        "[collect]\ninterval = \"250ms\"\n[store]\nretention_max_size = \"2GiB\"\nretention_max_age = \"30d\"\n",
    )
    .expect("valid");
    assert_eq!(cfg.collect.interval.0, Duration::from_millis(250));
    assert_eq!(cfg.store.retention_max_size.0, 2 << 30);
    assert_eq!(
        cfg.store.retention_max_age.0,
        Duration::from_secs(30 * 86400)
    );
}

#[test]
fn every_problem_is_reported_with_its_line_and_field() {
    let text = "\
[collect]
intervall = \"5s\"

[history]
max_series = \"many\"

[store]
flush_interval = \"10 parsecs\"
";
    let err = Config::from_toml(text).expect_err("three problems");
    let got: Vec<(Option<usize>, &str)> = err
        .problems
        .iter()
        .map(|p| (p.line, p.field.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(2), "collect.intervall"),
            (Some(5), "history.max_series"),
            (Some(8), "store.flush_interval"),
        ]
    );
    assert!(err.problems[0].message.contains("unknown field"), "{err}");
    assert!(err.problems[1].message.contains("invalid type"), "{err}");
    assert!(
        err.problems[2].message.contains("invalid duration"),
        "{err}"
    );
}

#[test]
fn unknown_section_is_reported_once_with_its_line() {
    let err = Config::from_toml(
        "[collect]\ninterval = \"1s\"\n\n[colect]\ninterval = \"1s\"\nother = 3\n",
    )
    .expect_err("unknown table");
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].line, Some(4));
}

#[test]
fn bare_number_duration_is_refused_with_a_hint() {
    let err = Config::from_toml("[collect]\ninterval = 5\n").expect_err("bare number");
    assert!(err.problems[0].message.contains("\"5s\""), "{err}");
}

#[test]
fn semantic_problems_point_at_their_line() {
    assert_eq!(
        problems("[api]\nlisten = \"0.0.0.0:9477\"\n\n[collect]\ninterval = \"1ms\"\n"),
        vec![
            (Some(2), "api.listen".to_string()),
            (Some(5), "collect.interval".to_string())
        ]
    );
}

#[test]
fn syntax_error_is_reported_with_its_line() {
    let err = Config::from_toml("[collect]\ninterval = \"5s\n").expect_err("unterminated string");
    assert_eq!(err.problems[0].line, Some(2), "{err}");
}

#[test]
fn display_names_file_line_and_field() {
    let mut err = Config::from_toml("[collect]\nintervall = \"5s\"\n").expect_err("unknown");
    err.file = Some(PathBuf::from("aegis.toml"));
    let text = err.to_string();
    assert!(
        text.contains("aegis.toml:2:1: `collect.intervall`: unknown field"),
        "{text}"
    );
}

/// Regression (hardening, item 3 of the house issue): a maintenance window
/// or a status range that does not parse used to pass and be dropped (or
/// replaced by 200-399) when the agent started; now it is a problem with
/// its line and field and never reaches the agent.
#[test]
fn invalid_maintenance_window_or_status_range_is_a_configuration_error() {
    let got = problems(
        "[[heal.maintenance]]\ndays = [\"sat\"]\nstart = \"25:00\"\nend = \"04:00\"\n\n[[probes]]\nname = \"web\"\nurl = \"http://127.0.0.1:1/\"\nexpect_status = \"2xx\"\n",
    );
    assert_eq!(
        got,
        vec![
            (Some(3), "heal.maintenance.0.start".to_string()),
            (Some(9), "probes.0.expect_status".to_string()),
        ]
    );
    let got = problems(
        "[[heal.maintenance]]\ndays = [\"someday\"]\nstart = \"02:00\"\nend = \"04:00\"\n",
    );
    assert_eq!(
        got,
        vec![(Some(2), "heal.maintenance.0.days.0".to_string())]
    );
}

/// Regression (hardening, item 8): an error inside an inline action table
/// is reported once, at its place, with no spurious "missing field" after it.
#[test]
fn an_error_inside_an_inline_action_is_reported_once_at_its_place() {
    let text = "[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [\n  { kind = \"command\", argv = [\"true\"] },\n  { kind = \"redis_flush\", address = \"nohost:notaport\" },\n]\n";
    let err = Config::from_toml(text).expect_err("bad address");
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].line, Some(6), "{err}");
    assert!(
        err.problems[0].field.starts_with("heal.rules.0.actions.1"),
        "{err}"
    );
}

/// Regression (hardening, items 7 and 8): values that were accepted but
/// invalid, and problems that had no line.
#[test]
fn accepted_but_invalid_values_are_problems_with_a_line() {
    let cases: &[(&str, &str)] = &[
        ("[docker]\ninterval = \"0s\"\n", "docker.interval"),
        ("[docker]\nhost = \"/var/run/docker.sock\"\n", "docker.host"),
        ("[docker]\nhost = \"unix://relative.sock\"\n", "docker.host"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"command\", argv = [] }]\n", "heal.rules.0.actions.0.argv"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"command\", argv = [\"\"] }]\n", "heal.rules.0.actions.0.argv"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"signal\", pid = 1, signal = \"TERM\" }]\n", "heal.rules.0.actions.0.pid"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"service_restart\", unit = \"--now\" }]\n", "heal.rules.0.actions.0.unit"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"webhook\", url = \"http://\" }]\n", "heal.rules.0.actions.0.url"),
        ("[heal]\nalert_webhook = { url = \"javascript:alert(1)\" }\n", "heal.alert_webhook.url"),
        ("[[probes]]\nname = \"x\"\nurl = \"http://exa mple.com:99999/x\"\n", "probes.0.url"),
        ("[[processes]]\nname = \"\"\ncomm = \"x\"\n", "processes.0.name"),
        ("[heal]\nverify_window = \"0s\"\n", "heal.verify_window"),
        ("[heal]\ncooldown = \"0s\"\n", "heal.cooldown"),
        ("[heal]\nrate_window = \"0s\"\n", "heal.rate_window"),
        ("[heal]\nbudget_window = \"0s\"\n", "heal.budget_window"),
        ("[heal]\nbreaker_cooldown = \"1m\"\nbreaker_max_cooldown = \"30s\"\n", "heal.breaker_max_cooldown"),
        ("[log]\nlevel = \"loud\"\n", "log.level"),
        ("[notify]\nmin_severity = \"severe\"\n", "notify.min_severity"),
        ("[[probes]]\nname = \"x\"\nurl = \"http://127.0.0.1/\"\nmethod = \"DELETE\"\n", "probes.0.method"),
        ("[[probes]]\nname = \"x\"\nurl = \"http://127.0.0.1/\"\njson_pointer = \"status\"\njson_equals = \"up\"\n", "probes.0.json_pointer"),
        ("[[processes]]\nname = \"x\"\n", "processes.0"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nmin_severity = \"bad\"\nactions = [{ kind = \"command\", argv = [\"true\"] }]\n", "heal.rules.0.min_severity"),
        ("[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = []\n", "heal.rules.0.actions"),
    ];
    for (text, field) in cases {
        let err = Config::from_toml(text).expect_err(text);
        assert!(
            err.problems
                .iter()
                .any(|p| p.field == *field && p.line.is_some()),
            "{text}\nwanted a problem at {field} with a line, got:\n{err}"
        );
    }
}

#[test]
fn names_used_twice_are_reported_at_the_second() {
    let text = "[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"command\", argv = [\"true\"] }]\n[[heal.rules]]\nname = \"r\"\non = \"anomaly\"\nactions = [{ kind = \"command\", argv = [\"true\"] }]\n";
    assert_eq!(
        problems(text),
        vec![(Some(6), "heal.rules.1.name".to_string())]
    );
}

#[test]
fn a_duplicate_key_names_its_field() {
    let err =
        Config::from_toml("[collect]\ninterval = \"1s\"\ninterval = \"2s\"\n").expect_err("dup");
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(err.problems[0].field.contains("interval"), "{err}");
    assert_eq!(err.problems[0].line, Some(3), "{err}");
}

#[test]
fn a_negative_count_names_its_field() {
    let err = Config::from_toml("[history]\nmax_series = -5\n").expect_err("negative");
    assert_eq!(err.problems[0].field, "history.max_series", "{err}");
    assert_eq!(err.problems[0].line, Some(2), "{err}");
}

#[test]
fn checks_load_with_their_kinds_fields() {
    let cfg = Config::from_toml(
        "[[checks]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:6379\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\ninterval = \"1s\"\n\n\
         [[checks]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\ndepends_on = [\"db\"]\ncontainer = \"web\"\n",
    )
    .expect("valid");
    assert_eq!(cfg.checks.len(), 2);
    assert_eq!(cfg.checks[1].depends_on[0].as_str(), "db");
    assert_eq!(
        cfg.checks[1].timeout_or(&cfg.probe),
        Duration::from_millis(500)
    );
    // A default timeout is never longer than the interval.
    assert_eq!(cfg.checks[0].timeout_or(&cfg.probe), Duration::from_secs(1));
}

#[test]
fn every_bad_check_is_a_problem_with_its_line_and_field() {
    let cases: &[(&str, &str)] = &[
        ("[[checks]]\nname = \"a\"\nkind = \"smtp\"\n", "checks.0.kind"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nurl = \"http://x/\"\n", "checks.0.url"),
        ("[[checks]]\nname = \"a\"\nkind = \"http\"\n", "checks.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\n", "checks.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1s\"\ntimeout = \"2s\"\n", "checks.0.timeout"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nfailure_threshold = 0\n", "checks.0.failure_threshold"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\nsuccess_threshold = 0\n", "checks.0.success_threshold"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ndepends_on = [\"nope\"]\n", "checks.0.depends_on.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"program\"\nargv = []\n", "checks.0.argv"),
        ("[[checks]]\nname = \"a\"\nkind = \"program\"\nargv = [\"sh\", \"-c\", \"true\"]\n", "checks.0.argv"),
        ("[[checks]]\nname = \"a\"\nkind = \"filesystem\"\nmount = \"/\"\nmax_used_ratio = 1.5\n", "checks.0.max_used_ratio"),
        ("[[checks]]\nname = \"a\"\nkind = \"series\"\nseries = \"host_load1\"\n", "checks.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"container\"\n", "checks.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"process\"\n", "checks.0"),
        ("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\n", "checks.1.name"),
        ("[[checks]]\nname = \"web\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n[[probes]]\nname = \"web\"\nurl = \"http://127.0.0.1/\"\n", "probes.0.name"),
    ];
    for (text, field) in cases {
        let err = Config::from_toml(text).expect_err(text);
        assert!(
            err.problems
                .iter()
                .any(|p| p.field == *field && p.line.is_some()),
            "{text}\nwanted a problem at {field} with a line, got:\n{err}"
        );
    }
}

#[test]
fn a_dependency_cycle_is_refused() {
    let text = "[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ndepends_on = [\"b\"]\n\
                [[checks]]\nname = \"b\"\nkind = \"tcp\"\naddress = \"127.0.0.1:2\"\ndepends_on = [\"a\"]\n";
    let err = Config::from_toml(text).expect_err("cycle");
    assert!(err.to_string().contains("cycle: a -> b -> a"), "{err}");
    assert!(err.problems[0].line.is_some(), "{err}");
}

#[test]
fn probes_and_processes_become_checks() {
    let cfg = Config::from_toml(
        "[[probes]]\nname = \"api\"\nurl = \"http://127.0.0.1:1/\"\n[[processes]]\nname = \"nginx\"\ncomm = \"nginx\"\n",
    )
    .expect("valid");
    let checks = cfg.effective_checks();
    assert_eq!(
        checks
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect::<Vec<_>>(),
        vec![("api", CheckKind::Http), ("nginx", CheckKind::Process)]
    );
}
