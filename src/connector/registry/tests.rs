//! The whole `check-config` pass (generic rules and every adapter's) on config files, and
//! building connectors from them.

use super::*;
use crate::config::load_from_str;
use crate::config::testing::{find, problems, VALID};

#[test]
fn builds_every_configured_target_and_names_a_broken_one() {
    let config: Config = toml::from_str(
        r#"
        [targets.dc-eu]
        kind = "digicert"
        base_url = "https://certcentral.digicert.eu/services/v2"
        api_key = "k"

        [targets.dc]
        kind = "digicert"
        base_url = "https://www.digicert.com/services/v2"
        api_key = "k"

        [targets.jama]
        kind = "jama"
        base_url = "https://example.jamacloud.com"
        client_id = "c"
        client_secret = "s"
        "#,
    )
    .unwrap();
    let connectors = build_connectors(&config).unwrap();
    assert_eq!(
        connectors.keys().collect::<Vec<_>>(),
        ["dc", "dc-eu", "jama"]
    );
    assert_eq!(connectors["dc-eu"].target(), "dc-eu");
    assert_eq!(
        connectors["jama"].capabilities().entitlement_types,
        ["usergroup"]
    );

    let broken: Config = toml::from_str(
        "[targets.dc]\nkind = \"digicert\"\nbase_url = \"https://www.digicert.com/services/v2\"",
    )
    .unwrap();
    let Err(err) = build_connectors(&broken) else {
        panic!("built without an api_key")
    };
    assert!(
        err.to_string().contains("target dc") && err.to_string().contains("api_key"),
        "{err}"
    );

    let broken: Config = toml::from_str(
        "[targets.jama]\nkind = \"jama\"\nbase_url = \"https://example.jamacloud.com\"\nclient_id = \"c\"",
    )
    .unwrap();
    let Err(err) = build_connectors(&broken) else {
        panic!("built without a client_secret")
    };
    assert!(
        err.to_string().contains("target jama") && err.to_string().contains("client_secret"),
        "{err}"
    );
}

const EXAMPLE: &str = include_str!("../../../config/idsync.example.toml");

const DIGICERT: &str = "[targets.dc]\nkind = \"digicert\"\n\
    base_url = \"https://dc.example/services/v2\"\napi_key = \"k\"\n";
const JAMA: &str = "[targets.jama]\nkind = \"jama\"\nbase_url = \"https://jama.example\"\n\
    client_id = \"c\"\nclient_secret = \"s\"\n";
const DUCKCREEK: &str = "[targets.duck]\nkind = \"duckcreek\"\n\
    base_url = \"https://dc.example/Server/Server.asmx\"\nusername = \"u\"\npassword = \"p\"\n";

#[test]
fn built_in_templates_and_good_overrides_pass() {
    assert_eq!(problems_of(&format!("{DIGICERT}{JAMA}")), []);
    let text = format!(
        "{DIGICERT}default_role = \"3\"\ndisable_strategy = \"delete\"\n\
         [targets.dc.templates]\n\
         update_account = '''{{\"job_title\": \"${{ user.title }}\"}}'''\n\
         {JAMA}remove_strategy = \"disable\"\n"
    );
    assert_eq!(problems_of(&text), []);
}

#[test]
fn a_task_lease_may_be_shorter_than_a_request_but_not_too_short() {
    // Heartbeats renew the lease while an attempt runs, so it need not cover one.
    let text = format!("{JAMA}timeout = \"60s\"\ntask_lease = \"10s\"\n");
    assert_eq!(problems_of(&text), []);
    let problems = problems_of(&format!("{JAMA}task_lease = \"2s\"\n"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "targets.jama.task_lease");
    assert!(problems[0].message.contains("at least 5s"), "{problems:?}");
}

#[test]
fn a_broken_template_fails_check_config_with_its_key() {
    let text = format!(
        "{DIGICERT}[targets.dc.templates]\n\
         create_account = '''{{\"u\": \"${{ user.username \"}}'''\n"
    );
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "targets.dc.templates.create_account");
    assert!(problems[0].message.contains("syntax error"), "{problems:?}");
    assert!(problems[0].message.contains(":1"), "{problems:?}");
}

#[test]
fn a_template_using_an_unknown_variable_fails_check_config() {
    let text = format!(
        "{JAMA}[targets.jama.templates]\n\
         update_account = '''\n{{\n\"title\": \"${{ usr.costcenter }}\"}}'''\n"
    );
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "targets.jama.templates.update_account");
    assert!(
        problems[0].message.contains("usr")
            && problems[0].message.contains("undefined")
            && problems[0].message.contains(":2"),
        "{problems:?}"
    );
    let text = format!(
        "{JAMA}[targets.jama.templates]\n\
         update_account = '''{{\"title\": ${{ user.title }}}}'''\n"
    );
    let problems = problems_of(&text);
    assert!(
        problems[0].message.contains("not valid JSON"),
        "{problems:?}"
    );
}

#[test]
fn a_custom_attribute_an_operator_template_reads_passes_check_config() {
    let text = format!(
        "{JAMA}[targets.jama.templates]\n\
         update_account = '''{{\"location\": \"${{ user.costcenter }}\"}}'''\n\
         {DUCKCREEK}[targets.duck.templates]\n\
         create_account = '''<A.addRq userName=\"${{ account.name }}\" cc=\"${{ user.costcenter }}\"/>'''\n"
    );
    assert_eq!(problems_of(&text), []);
}

#[test]
fn each_connector_says_which_attributes_an_operation_reads() {
    use crate::connector::template::AttributeReads;
    use crate::model::Operation::*;
    let text = format!(
        "{DIGICERT}{JAMA}[targets.jama.templates]\n\
         update_account = '''{{\"location\": \"${{ user.costcenter }}\"}}'''\n\
         {DUCKCREEK}[targets.duck.templates]\n\
         add_access_role = '''<A.roleRq userName=\"${{ account.name }}\" why=\"${{ user.reason }}\"/>'''\n"
    );
    let config = load_from_str(&text, "test", &[], &AdapterRules)
        .unwrap()
        .config;
    let connectors = build_connectors(&config).unwrap();
    let reads = |target: &str, operation, kind| {
        let used = connectors[target].attribute_keys(operation, kind);
        let keys = used
            .reads
            .keys()
            .map(|keys| keys.iter().cloned().collect::<Vec<_>>());
        (keys, used.templates)
    };
    let jama_create = [
        "email",
        "firstname",
        "lastname",
        "license_type",
        "location",
        "phonenumber",
        "title",
    ];
    assert_eq!(
        reads("jama", CreateAccount, None),
        (
            Some(jama_create.map(String::from).to_vec()),
            vec!["targets.jama.templates.create_account".to_string()]
        )
    );
    // The operator's template replaces the built-in one: only its keys count.
    assert_eq!(
        reads("jama", UpdateAccount, None).0,
        Some(vec!["costcenter".to_string()])
    );
    // No template: nothing is read.
    assert_eq!(reads("jama", EnableAccount, None), (Some(vec![]), vec![]));
    assert_eq!(
        reads("jama", AddAccess, Some("usergroup")),
        (Some(vec![]), vec![])
    );
    assert_eq!(
        reads("dc", CreateAccount, None).0,
        Some(
            [
                "container_id",
                "email",
                "firstname",
                "lastname",
                "phonenumber",
                "title"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(reads("dc", AddAccess, Some("role")), (Some(vec![]), vec![]));
    // Duck Creek: the template of the entitlement type, whatever its letter case.
    assert_eq!(
        reads("duck", AddAccess, Some("role")),
        (
            Some(vec!["reason".to_string()]),
            vec!["targets.duck.templates.add_access_role".to_string()]
        )
    );
    assert_eq!(
        reads("duck", AddAccess, Some("Entity")),
        (
            Some(vec![]),
            vec!["targets.duck.templates.add_access_entity".to_string()]
        )
    );
    assert_eq!(reads("duck", CreateAccount, None), (Some(vec![]), vec![]));
    assert_ne!(
        connectors["jama"].attribute_keys(CreateAccount, None).reads,
        AttributeReads::Any
    );
}

#[test]
fn template_keys_and_policies_must_fit_the_kind() {
    let text = format!(
        "{DIGICERT}remove_strategy = \"disable\"\ndefault_role = \"admin\"\n\
         [targets.dc.templates]\nenable_account = '{{}}'\n\
         {JAMA}disable_strategy = \"delete\"\ndefault_role = \"5\"\n"
    );
    let keys: Vec<String> = problems_of(&text)
        .into_iter()
        .map(|problem| problem.key)
        .collect();
    assert_eq!(
        keys,
        [
            "targets.dc.default_role",
            "targets.dc.remove_strategy",
            "targets.dc.templates.enable_account",
            "targets.jama.default_role",
            "targets.jama.disable_strategy",
        ]
    );
    let problems = problems_of(&format!("{DIGICERT}disable_strategy = \"lock\"\n"));
    assert_eq!(
        problems[0].key, "targets.dc.disable_strategy",
        "{problems:?}"
    );
}

#[test]
fn target_rules_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.der");
    std::fs::write(&not_pem, b"\x30\x82binary").unwrap();
    let text = format!(
        r#"
[store]
url = "postgres://db/idsync"

[log]
level = "info,[[["

[targets.Bad]
kind = "digicert"
base_url = "ftp://files.example.com"
api_key = "k"
page_size = 1001
max_concurrency = 0
rate_limit = [{{ requests = 1, per = "1s" }}, {{ requests = 0, per = "0s" }}]
deletion_threshold = {{ percent = 101.0 }}
read_retry = {{ max_attempts = 0, initial_backoff = "1m", max_backoff = "1s" }}
timeout = "0s"
tls = {{ ca_file = {ca} }}

[targets.nokey]
kind = "digicert"
base_url = "https://example.com"
"#,
        ca = toml::Value::String(not_pem.display().to_string())
    );
    let problems = problems_of(&text);
    for (key, needle) in [
        ("store.url", "PostgreSQL is not available yet"),
        ("log.level", "tracing filter"),
        ("targets.Bad", "[a-z][a-z0-9_-]*"),
        ("targets.Bad.base_url", "http or https"),
        ("targets.Bad.page_size", "between 1 and 1000"),
        ("targets.Bad.max_concurrency", "at least 1"),
        ("targets.Bad.rate_limit[1].requests", "at least 1"),
        ("targets.Bad.rate_limit[1].per", "longer than 0s"),
        (
            "targets.Bad.deletion_threshold.percent",
            "between 0 and 100",
        ),
        ("targets.Bad.read_retry.max_attempts", "at least 1"),
        ("targets.Bad.read_retry.initial_backoff", "max_backoff"),
        ("targets.Bad.timeout", "longer than 0s"),
        ("targets.Bad.tls.ca_file", "BEGIN CERTIFICATE"),
        ("targets.nokey.api_key", "required for kind = \"digicert\""),
    ] {
        let problem = find(&problems, key);
        assert!(problem.message.contains(needle), "{problem}");
    }
    assert_eq!(problems.len(), 14, "{problems:#?}");
}

#[test]
fn jama_target_rules_are_checked() {
    let text = r#"
[targets.jama]
kind = "jama"
base_url = "https://example.jamacloud.com"
client_id = "idsync"
client_secret = "s"
page_size = 100

[targets.nocreds]
kind = "jama"
base_url = "https://example.jamacloud.com/rest/v1/"
api_key = "k"
api_key_header = "X-Key"
token_refresh_skew = "0s"

[targets.colon]
kind = "jama"
base_url = "https://example.jamacloud.com"
client_id = "a:b"
client_secret = { env = "IDSYNC_TEST_JAMA_SECRET_UNSET_7F1" }
page_size = 1001

[targets.dc]
kind = "digicert"
base_url = "https://www.digicert.com/services/v2"
api_key = "k"
client_id = "x"
client_secret = "y"
"#;
    let problems = problems_of(text);
    for (key, needle) in [
        ("targets.nocreds.client_id", "required for kind = \"jama\""),
        (
            "targets.nocreds.client_secret",
            "required for kind = \"jama\"",
        ),
        (
            "targets.nocreds.api_key",
            "does not apply to kind = \"jama\"",
        ),
        (
            "targets.nocreds.api_key_header",
            "does not apply to kind = \"jama\"",
        ),
        ("targets.nocreds.base_url", "appends /rest/v1"),
        ("targets.nocreds.token_refresh_skew", "longer than 0s"),
        ("targets.colon.client_id", "must not contain `:`"),
        (
            "targets.colon.client_secret",
            "IDSYNC_TEST_JAMA_SECRET_UNSET_7F1",
        ),
        ("targets.colon.page_size", "between 1 and 1000"),
        (
            "targets.dc.client_id",
            "does not apply to kind = \"digicert\"",
        ),
        (
            "targets.dc.client_secret",
            "does not apply to kind = \"digicert\"",
        ),
    ] {
        let problem = find(&problems, key);
        assert!(problem.message.contains(needle), "{problem}");
    }
    assert_eq!(problems.len(), 11, "{problems:#?}");
    assert!(
        !problems.iter().any(|p| p.key.starts_with("targets.jama.")),
        "page_size 100 is fine for jama: {problems:#?}"
    );
    // A problem about a secret never shows its value.
    let dc = find(&problems, "targets.dc.client_secret");
    assert_eq!(dc.value, None);
}

#[test]
fn duckcreek_target_rules_are_checked() {
    let text = r#"
[targets.dc]
kind = "duckcreek"
base_url = "https://dc.example.com/Server/Server.asmx"
username = "svc_idsync"
password = "pw"
page_size = 5000
soap_version = "1.2"
request_wrapper = { element = "processRequestsAsDOM" }
already_done_codes = { disable_account = ["AlreadyLocked"], remove_access = [] }

[targets.nocreds]
kind = "duckcreek"
base_url = "https://dc.example.com/Server/Server.asmx"
api_key = "k"
soap_action = "urn:\"quoted\""
content_type = "application/json"
entity_id = ""
request_wrapper = { element = "soap:processRequestsAsDOM", namespace = " urn:x" }
already_done_codes = { create_account = ["UserExists"], add_access = ["AlreadyAssigned", ""] }

[targets.badtemplates]
kind = "duckcreek"
base_url = "https://dc.example.com/Server/Server.asmx"
username = "svc"
password = "pw"
page_size = 10001
[targets.badtemplates.templates]
enable_account = '<Security.unlockUserAccountRq userName="${ account.name }"></Security.lockUserAccountRq>'
add_access_role = '<Session.loginRq userName="a" password="b"/>'
create_account = '<Security.createUserRq name="${ account.nickname }"/>'
delete_everything = '<X/>'

[targets.jama]
kind = "jama"
base_url = "https://example.jamacloud.com"
client_id = "c"
client_secret = "s"
username = "u"
password = "p"
request_wrapper = { element = "processRequestsAsDOM" }
already_done_codes = { add_access = ["AlreadyAssigned"] }
"#;
    let problems = problems_of(text);
    for (key, needle) in [
        (
            "targets.nocreds.username",
            "required for kind = \"duckcreek\"",
        ),
        (
            "targets.nocreds.password",
            "required for kind = \"duckcreek\"",
        ),
        (
            "targets.nocreds.api_key",
            "does not apply to kind = \"duckcreek\"",
        ),
        ("targets.nocreds.soap_action", "without quotes"),
        ("targets.nocreds.content_type", "XML media type"),
        ("targets.nocreds.entity_id", "Duck Creek entity id"),
        (
            "targets.nocreds.request_wrapper.element",
            "without a prefix",
        ),
        (
            "targets.nocreds.request_wrapper.namespace",
            "surrounding spaces",
        ),
        (
            "targets.jama.request_wrapper",
            "does not apply to kind = \"jama\"",
        ),
        (
            "targets.jama.already_done_codes",
            "does not apply to kind = \"jama\"",
        ),
        (
            "targets.nocreds.already_done_codes.create_account",
            "use one of add_access, remove_access",
        ),
        ("targets.nocreds.already_done_codes.add_access", "non-empty"),
        ("targets.badtemplates.page_size", "between 1 and 10000"),
        (
            "targets.badtemplates.templates.delete_everything",
            "create_account",
        ),
        ("targets.jama.username", "does not apply to kind = \"jama\""),
        ("targets.jama.password", "does not apply to kind = \"jama\""),
    ] {
        let problem = find(&problems, key);
        assert!(problem.message.contains(needle), "{problem}");
    }
    assert!(
        !problems.iter().any(|p| p.key.starts_with("targets.dc.")),
        "{problems:#?}"
    );
    // The unknown key stops the template pass; fixed, the pass names every bad template.
    let text = text.replace("delete_everything = '<X/>'\n", "");
    let problems = problems_of(&text);
    for (key, needle) in [
        (
            "targets.badtemplates.templates.enable_account",
            "not well-formed XML",
        ),
        (
            "targets.badtemplates.templates.create_account",
            "account.nickname",
        ),
    ] {
        let problem = find(&problems, key);
        assert!(problem.message.contains(needle), "{problem}");
    }
    // Once the others are fixed, the login inside a template is named.
    let text = text
        .replace("></Security.lockUserAccountRq>", "/>")
        .replace("account.nickname", "account.name");
    let problems = problems_of(&text);
    let problem = find(&problems, "targets.badtemplates.templates.add_access_role");
    assert!(
        problem
            .message
            .contains("must not contain <Session.loginRq>"),
        "{problem}"
    );
    assert!(!problem.to_string().contains("password=\"b\""), "{problem}");
}

#[test]
fn example_file_loads() {
    let var = "IDSYNC_TEST_EXAMPLE_DIGICERT_API_KEY";
    let jama_var = "IDSYNC_TEST_EXAMPLE_JAMA_CLIENT_SECRET";
    assert_eq!(EXAMPLE.matches("{ env = \"DIGICERT_API_KEY\" }").count(), 1);
    assert_eq!(
        EXAMPLE.matches("{ env = \"JAMA_CLIENT_SECRET\" }").count(),
        1
    );
    let dc_var = "IDSYNC_TEST_EXAMPLE_DUCKCREEK_PASSWORD";
    std::env::set_var(var, "example-key");
    std::env::set_var(jama_var, "example-secret");
    std::env::set_var(dc_var, "example-password");
    let text = EXAMPLE
        .replace("DIGICERT_API_KEY", var)
        .replace("JAMA_CLIENT_SECRET", jama_var)
        .replace("DUCKCREEK_PASSWORD", dc_var);
    let loaded = load_from_str(&text, "idsync.example.toml", &[], &AdapterRules).unwrap();
    let jobs = &loaded.config.jobs;
    assert_eq!(jobs["digicert-accounts"].schedule, "0 */30 * * * *");
    assert_eq!(jobs["digicert-access"].schedule, "0 5,35 * * * *");
    assert_eq!(
        jobs["digicert-access"].kind,
        crate::model::JobKind::AccessImport
    );
    assert_eq!(jobs["jama-accounts"].target.as_deref(), Some("jama"));
    assert_eq!(
        jobs["jama-access"].kind,
        crate::model::JobKind::AccessImport
    );
    let jama = &loaded.config.targets["jama"];
    assert_eq!(jama.kind, TargetKind::Jama);
    assert_eq!(jama.client_id.as_deref(), Some("idsync"));
    assert_eq!(jama.token_refresh_skew.get().as_secs(), 60);
    let duckcreek = &loaded.config.targets["duckcreek"];
    assert_eq!(duckcreek.kind, TargetKind::Duckcreek);
    assert_eq!(duckcreek.username.as_deref(), Some("svc_idsync"));
    assert_eq!(
        jobs["duckcreek-access"].target.as_deref(),
        Some("duckcreek")
    );
}

/// Every optional setting the example shows (`#key = value`) exists and holds a valid value.
#[test]
fn example_file_loads_with_every_setting_uncommented() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (digicert, jama, token) = (
        "IDSYNC_TEST_EXAMPLE_ALL_DIGICERT_KEY",
        "IDSYNC_TEST_EXAMPLE_ALL_JAMA_SECRET",
        "IDSYNC_TEST_EXAMPLE_ALL_API_TOKEN",
    );
    let duckcreek = "IDSYNC_TEST_EXAMPLE_ALL_DUCKCREEK_PASSWORD";
    std::env::set_var(digicert, "example-key");
    std::env::set_var(jama, "example-secret");
    std::env::set_var(token, "example-token");
    std::env::set_var(duckcreek, "example-password");
    let mut uncommented = 0;
    let text: String = EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => {
                uncommented += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(uncommented >= 24, "only {uncommented} settings uncommented");
    let text = text
        .replace("DIGICERT_API_KEY", digicert)
        .replace("JAMA_CLIENT_SECRET", jama)
        .replace("DUCKCREEK_PASSWORD", duckcreek)
        .replace("IDSYNC_API_TOKEN", token)
        .replace("/etc/idsync/ca.pem", &ca.display().to_string());
    let config = load_from_str(&text, "idsync.example.toml", &[], &AdapterRules)
        .unwrap()
        .config;
    assert!(config.server.api_token.is_some());
    assert_eq!(config.targets["digicert"].page_size, Some(1000));
    assert_eq!(config.targets["jama"].page_size, Some(50));
    let duckcreek = &config.targets["duckcreek"];
    assert_eq!(duckcreek.entity_id.as_deref(), Some("1"));
    assert_eq!(
        duckcreek.soap_version,
        Some(crate::config::SoapVersion::V1_1)
    );
    assert!(duckcreek.templates.contains_key("enable_account"));
    assert_eq!(
        config.targets["jama"].token_refresh_skew.get().as_secs(),
        60
    );
}

#[test]
fn secret_values_never_reach_problems() {
    let secret = "s3cr3t-Zq81-never-print";
    let text = format!(
        r#"
[server]
api_token = {{ env = "X", extra = "{secret}" }}

[targets.broken]
kind = "digicert"
base_url = "ftp://example.com"
api_key = "{secret}"
api_kye = "{secret}"
page_size = 0

[targets.shape]
kind = "digicert"
base_url = "https://example.com"
api_key = {{ file = "/x", value = "{secret}" }}

[jobs.j]
type = "account_import"
target = "missing"
schedule = "* * * * *"
"#
    );
    let env = [
        (
            "IDSYNC__TARGETS__BROKEN__API_KEY",
            "{ not-toml s3cr3t-Zq81-never-print",
        ),
        ("IDSYNC__TARGETS__SHAPE__API_KEY__ENV", secret),
    ];
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let err = load_from_str(&text, "test.toml", &env, &AdapterRules).unwrap_err();
    assert!(err.problems.len() >= 8, "{:#?}", err.problems);
    let shown: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let all = format!("{err} {err:?} {}", shown.join("\n"));
    assert!(!all.contains(secret), "{all}");
    for key in [
        "server.api_token",
        "targets.shape.api_key",
        "targets.broken.api_kye",
    ] {
        assert_eq!(find(&err.problems, key).value, None, "{key}");
    }
}

#[test]
fn env_override_problems_name_the_variable() {
    let problems = problems_with_env(VALID, &[("IDSYNC__TARGETS__DIGICERT__PAGE_SIZE", "5000")]);
    let problem = find(&problems, "targets.digicert.page_size");
    assert_eq!(problem.value.as_deref(), Some("5000"));
    assert!(
        problem
            .message
            .contains("IDSYNC__TARGETS__DIGICERT__PAGE_SIZE"),
        "{problem}"
    );
    let problems = problems_with_env(VALID, &[("IDSYNC__TARGETS__DIGICERT__PAGE_SIZE", "lots")]);
    assert!(find(&problems, "targets.digicert.page_size")
        .message
        .contains("IDSYNC__"));
}

/// The problems of `text` under every rule; none when it loads.
fn problems_of(text: &str) -> Vec<ConfigProblem> {
    problems(text, &[], &AdapterRules)
}

/// The problems of `text` with the overrides `env`, under every rule (it must not load).
fn problems_with_env(text: &str, env: &[(&str, &str)]) -> Vec<ConfigProblem> {
    let found = problems(text, env, &AdapterRules);
    assert!(!found.is_empty(), "expected problems, but it loaded");
    found
}

#[test]
fn missing_env_secret_names_the_variable() {
    let var = "IDSYNC_TEST_LOAD_UNSET_API_KEY_7F3A";
    let text = VALID.replace(
        "\"literal-key-for-tests\"",
        &format!("{{ env = \"{var}\" }}"),
    );
    let problems = problems_of(&text);
    let problem = find(&problems, "targets.digicert.api_key");
    assert!(problem.message.contains(var), "{problem}");
    assert_eq!(problem.value, None);
}

#[test]
fn missing_secret_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-key");
    let text = VALID.replace(
        "\"literal-key-for-tests\"",
        &format!(
            "{{ file = {} }}",
            toml::Value::String(path.display().to_string())
        ),
    );
    let problems = problems_of(&text);
    let problem = find(&problems, "targets.digicert.api_key");
    assert!(
        problem.message.contains(&path.display().to_string()),
        "{problem}"
    );
}

/// An inline-table override of a target's secret is resolved by its adapter, and the problem
/// says which variable set it.
#[test]
fn an_inline_table_secret_override_names_its_variable() {
    let problems = problems_with_env(
        VALID,
        &[(
            "IDSYNC__TARGETS__DIGICERT__API_KEY",
            "{ file = \"/nonexistent/idsync/key\" }",
        )],
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let problem = find(&problems, "targets.digicert.api_key");
    assert!(
        problem.message.contains("/nonexistent/idsync/key")
            && problem
                .message
                .contains("(set by IDSYNC__TARGETS__DIGICERT__API_KEY)"),
        "{problem}"
    );
}
