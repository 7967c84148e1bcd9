//! Unit tests of the HTTP client against wiremock.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use governor::clock::{Clock, FakeRelativeClock};
use governor::Quota;
use reqwest::header::HeaderValue;
use secrecy::SecretString;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::pacing::pacing_burst;
use super::*;
use crate::connector::kit::testing::assert_error;
use crate::connector::ErrorClass;

const KEY: &str = "k3y-DISTINCTIVE-7f3a9c51e0";

/// A target config for tests: no pacing, tiny backoffs, plus `extra` TOML lines.
fn config(base: &str, extra: &str) -> TargetConfig {
    let text = format!(
        "kind = \"digicert\"\nbase_url = \"{base}\"\n{}{}{extra}",
        if extra.contains("rate_limit") {
            ""
        } else {
            "rate_limit = []\n"
        },
        if extra.contains("read_retry") {
            ""
        } else {
            "read_retry = { max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"20ms\" }\n"
        },
    );
    toml::from_str(&text).unwrap()
}

fn client_with(base: &str, extra: &str, credential: Arc<dyn Credential>) -> HttpClient {
    let defaults = ClientDefaults {
        rate_limits: Vec::new(),
        read_error: crate::connector::digicert::read_error,
    };
    HttpClient::new("dc", &config(base, extra), defaults, credential).unwrap()
}

fn keyed_client(base: &str, extra: &str) -> HttpClient {
    let credential = StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(KEY)).unwrap();
    client_with(base, extra, Arc::new(credential))
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "code": code, "message": message }] })
}

fn assert_no_key(err: &ConnectorError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
    }
}

#[test]
fn url_appends_encoded_single_segments() {
    for base in [
        "https://dc.example/services/v2",
        "https://dc.example/services/v2/",
    ] {
        let client = keyed_client(base, "");
        let url = client.url(&["user", "123"], &[]).unwrap();
        assert_eq!(url.as_str(), "https://dc.example/services/v2/user/123");
    }
    let client = keyed_client("https://dc.example/services/v2?x=1#frag", "");
    let url = client
        .url(
            &["user", "a/b c?d#e"],
            &[("offset", "10".into()), ("filters[search]", "a&b".into())],
        )
        .unwrap();
    assert_eq!(
        url.as_str(),
        "https://dc.example/services/v2/user/a%2Fb%20c%3Fd%23e?offset=10&filters%5Bsearch%5D=a%26b"
    );
    for bad in ["..", ".", ""] {
        let err = client.url(&["user", bad], &[]).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{bad:?}");
    }
}

#[test]
fn debug_shows_target_and_base_only() {
    let client = keyed_client("https://dc.example/services/v2", "");
    let text = format!("{client:?}");
    assert!(
        text.contains("dc") && text.contains("https://dc.example/services/v2"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
    let header = StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(KEY)).unwrap();
    assert!(!format!("{header:?}").contains(KEY));
}

#[test]
fn bad_header_names_and_values_are_refused_without_quoting_the_secret() {
    let err = StaticHeader::new("dc", "bad header", SecretString::from(KEY)).unwrap_err();
    assert!(err.to_string().contains("`bad header`"), "{err}");
    let err =
        StaticHeader::new("dc", "X-DC-DEVKEY", SecretString::from(format!("{KEY}\n"))).unwrap_err();
    assert!(err.to_string().contains("stray newline"), "{err}");
    assert_no_key(&err);
}

#[tokio::test]
async fn statuses_are_classified_with_the_targets_message() {
    let server = MockServer::start().await;
    let cases = [
        (401, "invalid_api_key", ErrorClass::Auth),
        (
            403,
            "access_denied|missing_permission",
            ErrorClass::Forbidden,
        ),
        (404, "not_found", ErrorClass::Permanent),
        (400, "bad_request_format", ErrorClass::Permanent),
        (429, "request_limit_exceeded", ErrorClass::RateLimited),
        (500, "server_error", ErrorClass::Transient),
        (503, "unavailable", ErrorClass::Transient),
    ];
    for (status, code, _) in cases {
        Mock::given(path(format!("/services/v2/s{status}")))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(error_body(code, &format!("the words of {status}"))),
            )
            .mount(&server)
            .await;
    }
    let client = keyed_client(&format!("{}/services/v2", server.uri()), "");
    for (status, code, class) in cases {
        let url = client.url(&[&format!("s{status}")], &[]).unwrap();
        let err = client.send(Method::GET, url, None).await.unwrap_err();
        assert_eq!(err.class(), class, "{status}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{code}: the words of {status}")),
            "{status}: {text}"
        );
        if let ConnectorError::Permanent { status: got, .. } = &err {
            assert_eq!(*got, Some(status), "{text}");
        }
        if let ConnectorError::RateLimited { retry_after, .. } = &err {
            assert_eq!(*retry_after, None, "DigiCert sends no Retry-After");
        }
    }
    // Each was sent once: `send` never retries.
    assert_eq!(server.received_requests().await.unwrap().len(), cases.len());
}

#[tokio::test]
async fn a_body_without_the_targets_shape_is_quoted_short() {
    let server = MockServer::start().await;
    let long = format!("<html>  gateway\n\n broke {}</html>", "x".repeat(1000));
    Mock::given(path("/html"))
        .respond_with(ResponseTemplate::new(404).set_body_string(long))
        .mount(&server)
        .await;
    Mock::given(path("/empty"))
        .respond_with(ResponseTemplate::new(418))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let err = client
        .send(Method::GET, client.url(&["html"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("<html> gateway broke xxx") && text.ends_with('…'),
        "{text}"
    );
    assert!(text.len() < 400, "{text}");
    let err = client
        .send(Method::GET, client.url(&["empty"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("I'm a teapot"), "{err}");
}

#[tokio::test]
async fn timeouts_are_transient() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "timeout = \"100ms\"\n");
    let err = client
        .send(Method::GET, client.url(&["slow"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert!(err.to_string().contains("GET /slow timed out"), "{err}");
    assert_no_key(&err);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = keyed_client(&format!("http://127.0.0.1:{port}/services/v2"), "");
    let err = client
        .send(Method::GET, client.url(&["user"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("http://"), "no URL in the message: {text}");
    assert_no_key(&err);
}

#[tokio::test]
async fn get_is_retried_on_503_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let body: serde_json::Value = client
        .get_json(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"ok": true}));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn get_gives_up_after_max_attempts_and_does_not_retry_permanent_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    Mock::given(path("/gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let err = client
        .get_json::<serde_json::Value>(client.url(&["down"], &[]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    let err = client
        .get_json::<serde_json::Value>(client.url(&["gone"], &[]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/down").count(),
        3
    );
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/gone").count(),
        1
    );
}

#[tokio::test]
async fn post_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let body = serde_json::json!({"username": "jane"});
    let err = client
        .send(
            Method::POST,
            client.url(&["user"], &[]).unwrap(),
            Some(&body),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body_json::<serde_json::Value>().unwrap(), body);
}

#[tokio::test]
async fn send_returns_status_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 7})))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let response = client
        .send(Method::POST, client.url(&["user"], &[]).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::CREATED);
    let parsed: serde_json::Value = client.parse_json("POST /user", &response.body).unwrap();
    assert_eq!(parsed["id"], 7);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let retry =
        "read_retry = { max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"2s\" }\n";
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), retry);
    let started = Instant::now();
    let _: serde_json::Value = client
        .get_json(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_max_backoff_ends_the_retries() {
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let err = client
        .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap_err();
    match err {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        parse_retry_after(&headers, now)
    };
    assert_eq!(with("7"), Some(Duration::from_secs(7)));
    assert_eq!(
        with("Wed, 21 Oct 2015 07:28:30 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(with("Wed, 21 Oct 2015 07:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(with("soon"), None);
    assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
}

#[tokio::test]
async fn redirects_are_not_followed_and_name_the_host() {
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("Location", "https://evil.example/steal"),
        )
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let err = client
        .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains("evil.example") && text.contains("HTTP 302"),
        "{text}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn requests_go_only_to_the_base_origin() {
    let server = MockServer::start().await;
    let client = keyed_client(&format!("{}/services/v2", server.uri()), "");
    let elsewhere = Url::parse("http://127.0.0.1:9/services/v2/user").unwrap();
    let err = client.send(Method::GET, elsewhere, None).await.unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "refusing to send a request to http://127.0.0.1:9",
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(5000)))
        .mount(&server)
        .await;
    Mock::given(path("/small"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(1000)))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "max_response_bytes = 1000\n");
    let err = client
        .send(Method::GET, client.url(&["big"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert_error(
        &err,
        ErrorClass::Permanent,
        "larger than max_response_bytes (1000 bytes)",
    );
    let ok = client
        .send(Method::GET, client.url(&["small"], &[]).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 1000);
}

#[tokio::test]
async fn malformed_json_is_permanent_and_names_what_failed() {
    let server = MockServer::start().await;
    Mock::given(path("/user"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"users\": [1, 2"))
        .mount(&server)
        .await;
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct UsersPage {
        users: Vec<u32>,
    }
    let client = keyed_client(&server.uri(), "");
    let err = client
        .get_json::<UsersPage>(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    let text = err.to_string();
    assert!(
        text.contains("malformed response: cannot read the response to /user as UsersPage"),
        "{text}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );
}

#[test]
fn a_ca_file_that_is_not_pem_is_a_clear_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    for (file, words) in [
        (&not_pem, "holds no PEM certificate"),
        (&broken, "broken.pem"),
        (&missing, "cannot read tls.ca_file"),
    ] {
        let extra = format!("tls = {{ ca_file = \"{}\" }}\n", file.display());
        let err = HttpClient::new(
            "dc",
            &config("https://dc.example", &extra),
            ClientDefaults::default(),
            Arc::new(NoCredential),
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(
            text.contains("configuration error") && text.contains(words),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_api_key_is_sent_but_never_shown() {
    let server = MockServer::start().await;
    // A target that echoes the request headers in its error body.
    Mock::given(path("/user"))
        .and(header("X-DC-DEVKEY", KEY))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "invalid_api_key",
            &format!("key {KEY} is revoked"),
        )))
        .mount(&server)
        .await;
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!("X-DC-DEVKEY: {KEY}")))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    let err = client
        .get_json::<serde_json::Value>(client.url(&["user"], &[]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth, "the key was sent: {err}");
    assert!(
        err.to_string()
            .contains("invalid_api_key: key [REDACTED] is revoked"),
        "{err}"
    );
    assert_no_key(&err);
    let err = client
        .send(Method::GET, client.url(&["echo"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert_no_key(&err);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "a 401 is not retried"
    );
    assert!(!format!("{client:?}").contains(KEY));
}

/// A bearer-token source: the token changes after a 401.
struct Rotating {
    refreshed: AtomicBool,
    refreshes: AtomicUsize,
}

#[async_trait]
impl Credential for Rotating {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        let token = if self.refreshed.load(Ordering::SeqCst) {
            "new"
        } else {
            "old"
        };
        Ok(request.bearer_auth(token))
    }

    async fn on_unauthorized(&self) -> bool {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        self.refreshed.store(true, Ordering::SeqCst);
        true
    }
}

#[tokio::test]
async fn a_refreshable_credential_gets_one_retry_after_401() {
    let server = MockServer::start().await;
    Mock::given(path("/ok"))
        .and(header("Authorization", "Bearer new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&server)
        .await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(path("/never"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;

    let credential = Arc::new(Rotating {
        refreshed: AtomicBool::new(false),
        refreshes: AtomicUsize::new(0),
    });
    let client = client_with(&server.uri(), "", credential.clone());
    // A POST too: a 401 means the request was not carried out.
    client
        .send(Method::POST, client.url(&["ok"], &[]).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(credential.refreshes.load(Ordering::SeqCst), 1);

    let err = client
        .send(Method::GET, client.url(&["never"], &[]).unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert_eq!(
        credential.refreshes.load(Ordering::SeqCst),
        2,
        "refreshed once, retried once"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.iter().filter(|r| r.url.path() == "/never").count(),
        2
    );
}

#[tokio::test]
async fn max_concurrency_caps_requests_in_flight() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(150)))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "max_concurrency = 1\n");
    let url = client.url(&["slow"], &[]).unwrap();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        client.send(Method::GET, url.clone(), None),
        client.send(Method::GET, url.clone(), None)
    );
    a.unwrap();
    b.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_are_counted_by_status_class() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let server = MockServer::start().await;
    Mock::given(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/busy"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    Mock::given(path("/boom"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let client = keyed_client(&server.uri(), "");
    for segment in ["ok", "ok", "busy", "boom"] {
        let _ = client
            .send(Method::GET, client.url(&[segment], &[]).unwrap(), None)
            .await;
    }
    let text = handle.render();
    for line in [
        "idsync_target_requests_total{target=\"dc\",status_class=\"2xx\"} 2",
        "idsync_target_requests_total{target=\"dc\",status_class=\"429\"} 1",
        "idsync_target_requests_total{target=\"dc\",status_class=\"5xx\"} 1",
        "idsync_target_request_duration_seconds_count{target=\"dc\"} 4",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// A credential that can never be had (a token endpoint refusing the client).
struct Unobtainable;

#[async_trait]
impl Credential for Unobtainable {
    async fn apply(&self, _: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Err(ConnectorError::Auth {
            target: "dc".into(),
            message: "client_id or client_secret rejected".into(),
        })
    }
}

#[tokio::test]
async fn a_credential_that_cannot_be_had_sends_and_counts_nothing() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let server = MockServer::start().await;
    let client = client_with(&server.uri(), "", Arc::new(Unobtainable));
    let url = client.url(&["ok"], &[]).unwrap();
    let err = client
        .send(Method::GET, url.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    let raw = RawBody {
        content_type: HeaderValue::from_static("text/xml"),
        headers: Vec::new(),
        bytes: Bytes::from_static(b"<x/>"),
    };
    let err = client
        .send_streaming(Method::POST, &url, &raw)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(server.received_requests().await.unwrap().is_empty());
    let text = handle.render();
    assert!(!text.contains("idsync_target_requests_total"), "{text}");
}

#[test]
fn pacing_uses_the_default_unless_configured() {
    let defaults = || ClientDefaults {
        rate_limits: vec![RateLimit {
            requests: 90,
            per: crate::config::ConfigDuration::from_secs(5),
        }],
        read_error: plain_errors,
    };
    let build = |extra: &str| {
        let text = format!("kind = \"digicert\"\nbase_url = \"https://dc.example\"\n{extra}");
        let config: TargetConfig = toml::from_str(&text).unwrap();
        HttpClient::new("dc", &config, defaults(), Arc::new(NoCredential))
            .unwrap()
            .rate_limits()
    };
    assert_eq!(build("").len(), 1);
    assert_eq!(build("rate_limit = []").len(), 0);
    let configured =
        build("rate_limit = [{ requests = 3, per = \"1s\" }, { requests = 10, per = \"1m\" }]");
    assert_eq!(
        configured.iter().map(|w| w.requests).collect::<Vec<_>>(),
        [3, 10]
    );
    let one = build("rate_limit = { requests = 7, per = \"1s\" }");
    assert_eq!(one.iter().map(|w| w.requests).collect::<Vec<_>>(), [7]);
    let text = String::from("kind = \"digicert\"\nbase_url = \"https://dc.example\"\nrate_limit = { requests = 0, per = \"1s\" }");
    let config: TargetConfig = toml::from_str(&text).unwrap();
    let err = HttpClient::new("dc", &config, defaults(), Arc::new(NoCredential)).unwrap_err();
    assert!(err.to_string().contains("allows no request"), "{err}");
}

/// The times (ns from start) at which a greedy caller gets through `quota` within `horizon`.
fn greedy_schedule(quota: Quota, horizon: Duration) -> Vec<u64> {
    let clock = FakeRelativeClock::default();
    let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
    let start = clock.now();
    let horizon = u64::try_from(horizon.as_nanos()).unwrap();
    let mut times = Vec::new();
    loop {
        let elapsed = clock.now().saturating_sub(start).as_u64();
        if elapsed > horizon {
            return times;
        }
        match limiter.check() {
            Ok(()) => times.push(elapsed),
            Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
        }
    }
}

/// The most requests in any closed interval of length `window`.
fn busiest_window(times: &[u64], window: Duration) -> usize {
    let window = u64::try_from(window.as_nanos()).unwrap();
    let mut best = 0;
    let mut first = 0;
    for (last, &t) in times.iter().enumerate() {
        while t - times[first] > window {
            first += 1;
        }
        best = best.max(last - first + 1);
    }
    best
}

#[test]
fn a_plain_quota_would_let_twice_the_limit_through() {
    // The check below can fail: a naive quota (burst L, L per W) breaks the window.
    let naive = Quota::with_period(Duration::from_secs(5) / 100)
        .unwrap()
        .allow_burst(NonZeroU32::new(100).unwrap());
    let times = greedy_schedule(naive, Duration::from_secs(30));
    assert!(busiest_window(&times, Duration::from_secs(5)) > 190);
}

#[test]
fn pacing_keeps_every_rolling_window_within_its_limit() {
    let windows = [
        (90, 5),
        (900, 180),
        (100, 5),
        (1000, 180),
        (1, 1),
        (2, 1),
        (10, 1),
        (15, 60),
        (3, 7),
    ];
    for (requests, secs) in windows {
        let window = RateLimit {
            requests,
            per: crate::config::ConfigDuration::from_secs(secs),
        };
        let quota = pacing_quota(&window).unwrap();
        let horizon = Duration::from_secs(secs * 6);
        let times = greedy_schedule(quota, horizon);
        let busiest = busiest_window(&times, window.per.get());
        assert!(
            busiest <= requests as usize,
            "{requests}/{secs}s: {busiest} in one window"
        );
        // And it is not needlessly slow: the burst, then L - burst per window.
        let burst = pacing_burst(requests);
        let expected = if requests > burst {
            burst + (requests - burst) * 6
        } else {
            6
        } as usize;
        assert!(
            times.len() >= expected,
            "{requests}/{secs}s: only {} of {expected}",
            times.len()
        );
    }
    assert!(pacing_quota(&RateLimit {
        requests: 0,
        per: crate::config::ConfigDuration::from_secs(1)
    })
    .is_none());
    assert!(pacing_quota(&RateLimit {
        requests: 5,
        per: crate::config::ConfigDuration::from_secs(0)
    })
    .is_none());
}

#[tokio::test]
async fn a_paced_client_waits_between_requests() {
    let server = MockServer::start().await;
    Mock::given(query_param("n", "1"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // 2 per 200 ms: burst 1, then one every 200 ms.
    let client = keyed_client(
        &server.uri(),
        "rate_limit = { requests = 2, per = \"200ms\" }\n",
    );
    let started = Instant::now();
    for _ in 0..3 {
        client
            .send(
                Method::GET,
                client.url(&["x"], &[("n", "1".into())]).unwrap(),
                None,
            )
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "{:?}",
        started.elapsed()
    );
}
