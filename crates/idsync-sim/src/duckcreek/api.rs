//! The SOAP endpoint.
//!
//! Every request outside `/_sim/` lands in [`entry`]. A path other than [`API_ROOT`] is a 404
//! (not delayed, not counted). Otherwise latency is slept first, then, in order:
//! 1. a method other than `POST`: 405 with `Allow: POST`;
//! 2. the rate windows: a bare 429 (refused requests still count);
//! 3. a `Content-Type` other than `text/xml` (any parameters): 415;
//! 4. the body is read; the inner requests of a well-formed batch are counted by name;
//! 5. fault rules (matched on method, path, query and the batch's request names): a 5xx is
//!    answered with a `Server` fault, a 4xx with a `Client` fault, at that status;
//! 6. a body that is not well-formed: a `Client` fault (HTTP 500); a root `Envelope` in
//!    another namespace: a `VersionMismatch` fault; no `Body/server/requests`: a `Client`
//!    fault;
//! 7. no `SOAPAction` header while `require_soap_action` is on: a `Client` fault (by default
//!    a request needs none);
//! 8. a batch whose first request is not `Session.loginRq`, or any login with a wrong or
//!    revoked credential: a `Client` fault (an empty batch needs no login);
//! 9. the batch runs, one `…Rs` per request in order; then the first matching response fault
//!    may break the answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::batch::{Op, LOGIN};
use super::response_faults::{self, ResponseFault};
use super::soap::{self, Batch, FaultCode, ParseError};
use super::{DuckCreekControl, DuckCreekState, API_ROOT};
use crate::control::delay;
use crate::faults::RequestFacts;

/// The route label SOAP calls are counted under.
pub(crate) const ROUTE: &str = "POST /Server/Server.asmx";

const XML_TYPE: &str = "text/xml; charset=utf-8";
const HTML_TYPE: &str = "text/html; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    content_type: Option<&'static str>,
    pub(crate) body: String,
    allow_post: bool,
}

impl Reply {
    fn new(status: u16, content_type: Option<&'static str>, body: String) -> Self {
        Self {
            status,
            content_type,
            body,
            allow_post: false,
        }
    }

    fn xml(body: String) -> Self {
        Self::new(200, Some(XML_TYPE), body)
    }

    fn fault(status: u16, prefix: &str, code: FaultCode, error: &str, message: &str) -> Self {
        Self::new(
            status,
            Some(XML_TYPE),
            soap::fault(prefix, code, error, message),
        )
    }

    fn text(status: u16, message: &str) -> Self {
        Self::new(status, Some(TEXT_TYPE), format!("{message}\n"))
    }

    fn not_found() -> Self {
        Self::text(404, "404 - File or directory not found.")
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        match self.content_type {
            Some(content_type) => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            None => {
                headers.remove(header::CONTENT_TYPE);
            }
        }
        if self.allow_post {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// The local names of the requests a call carries (none when it does not parse): what the
/// fault layer's `request` matcher looks at.
pub(super) fn request_names(body: &[u8]) -> Vec<String> {
    soap::parse(body)
        .map(|batch| {
            batch
                .requests
                .into_iter()
                .map(|request| request.name)
                .collect()
        })
        .unwrap_or_default()
}

/// A call as the handler sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoapRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    /// Whether a `SOAPAction` header came (any value, `""` included).
    pub(crate) soap_action: bool,
    pub(crate) body: &'a [u8],
}

/// The axum fallback: every request that is not a control route.
pub(super) async fn entry(
    State(control): State<DuckCreekControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    // IIS matches paths without letter case.
    if !path.eq_ignore_ascii_case(API_ROOT) {
        tracing::debug!(method = %method, path, status = 404, "Duck Creek simulator: no such route.");
        return Reply::not_found().into_response();
    }
    delay(&control).await;
    let request = SoapRequest {
        method: method.as_str(),
        path,
        query: uri.query(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
        soap_action: headers.contains_key("soapaction"),
        body: &body,
    };
    let reply = {
        let mut state = control.lock();
        let now = state.core.clock.now();
        state.handle(&request, now)
    };
    reply.into_response()
}

impl DuckCreekState {
    /// Answers one call to the endpoint arriving at `now` and counts it.
    pub(crate) fn handle(&mut self, request: &SoapRequest<'_>, now: Instant) -> Reply {
        let route = if request.method == "POST" {
            ROUTE
        } else {
            "unmatched"
        };
        let mut labels = Vec::new();
        let reply = self.answer(request, now, &mut labels);
        self.core.stats.record(route, reply.status);
        // The body carries the password: only request names and the status are logged.
        tracing::debug!(
            method = request.method,
            requests = ?labels,
            status = reply.status,
            "Duck Creek simulator request."
        );
        reply
    }

    fn answer(
        &mut self,
        request: &SoapRequest<'_>,
        now: Instant,
        labels: &mut Vec<&'static str>,
    ) -> Reply {
        if request.method != "POST" {
            let mut reply = Reply::text(
                405,
                "405 - HTTP verb used to access this page is not allowed.",
            );
            reply.allow_post = true;
            return reply;
        }
        if !self.core.limiter.admit(now) {
            return Reply::new(429, None, String::new());
        }
        if !is_text_xml(request.content_type) {
            return Reply::text(
                415,
                "415 - Unsupported Media Type: a SOAP 1.1 request is sent as text/xml.",
            );
        }
        let parsed = soap::parse(request.body);
        let names: Vec<&str> = match &parsed {
            Ok(batch) => batch.requests.iter().map(|r| r.name.as_str()).collect(),
            Err(_) => Vec::new(),
        };
        for name in &names {
            let label = Op::parse(name).label();
            labels.push(label);
            self.core.stats.record_inner(label);
        }
        let facts = RequestFacts {
            method: request.method,
            api_root: API_ROOT,
            full_path: request.path,
            api_path: "",
            query: request.query,
            requests: &names,
        };
        if let Some(status) = self.core.faults.take_match(&facts) {
            let code = if status >= 500 {
                FaultCode::Server
            } else {
                FaultCode::Client
            };
            return self.fault(
                status,
                code,
                "SimulatedFailure",
                "Server was unable to process request: simulated failure.",
            );
        }
        let batch = match &parsed {
            Ok(batch) => batch,
            Err(ParseError::Malformed(message)) => {
                return self.fault(500, FaultCode::Client, "MalformedXml", message)
            }
            Err(ParseError::VersionMismatch) => {
                return self.fault(
                    500,
                    FaultCode::VersionMismatch,
                    "VersionMismatch",
                    "Possible SOAP version mismatch: the envelope namespace is not \
                     http://schemas.xmlsoap.org/soap/envelope/.",
                )
            }
            Err(ParseError::NotBatch(message)) => {
                return self.fault(500, FaultCode::Client, "InvalidRequest", message)
            }
        };
        if self.require_soap_action && !request.soap_action {
            return self.fault(
                500,
                FaultCode::Client,
                "MissingSoapAction",
                "The SOAPAction HTTP header is required.",
            );
        }
        if self.require_wrapper && !batch.wrapped {
            return self.fault(
                500,
                FaultCode::Client,
                "InvalidRequest",
                "Server did not recognize the request: the Body must hold processRequestsAsDOM.",
            );
        }
        if let Err(reply) = self.check_login(batch) {
            return reply;
        }
        let body = self.run(batch);
        match self.response_faults.take_response(&names) {
            None => Reply::xml(body),
            Some(ResponseFault::Truncate) => Reply::xml(response_faults::truncate(body)),
            Some(ResponseFault::EntityBomb) => {
                Reply::xml(response_faults::entity_bomb(&body, &self.prefix))
            }
            Some(ResponseFault::Malformed) => Reply::xml(response_faults::malformed(&body)),
            Some(ResponseFault::Html) => {
                Reply::new(200, Some(HTML_TYPE), response_faults::HTML_PAGE.to_owned())
            }
            // Failures are answered per request while the batch runs.
            Some(ResponseFault::Failure { .. }) => Reply::xml(body),
        }
    }

    fn fault(&self, status: u16, code: FaultCode, error: &str, message: &str) -> Reply {
        Reply::fault(status, &self.prefix, code, error, message)
    }

    /// The first request must log in, and every login in the batch must name the accepted
    /// credentials.
    fn check_login(&mut self, batch: &Batch) -> Result<(), Reply> {
        let Some(first) = batch.requests.first() else {
            return Ok(());
        };
        if first.name != LOGIN {
            return Err(self.fault(
                500,
                FaultCode::Client,
                "NotLoggedIn",
                "Not logged in: the first request of a batch must be Session.loginRq.",
            ));
        }
        for login in batch.requests.iter().filter(|r| r.name == LOGIN) {
            if !self.credentials_accepted(login.attr("userName"), login.attr("password")) {
                self.core.stats.login_failures += 1;
                return Err(self.fault(
                    500,
                    FaultCode::Client,
                    "LoginFailed",
                    "Login failed: invalid user name or password.",
                ));
            }
        }
        Ok(())
    }

    fn credentials_accepted(&self, username: Option<&str>, password: Option<&str>) -> bool {
        let (Some(username), Some(password)) = (username, password) else {
            return false;
        };
        let name_ok: bool = username.as_bytes().ct_eq(self.username.as_bytes()).into();
        let password_ok: bool = password
            .as_bytes()
            .ct_eq(self.password.expose_secret().as_bytes())
            .into();
        name_ok && password_ok && !self.credentials_revoked
    }
}

/// True for `text/xml`, with any parameters.
fn is_text_xml(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/xml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_media_types() {
        assert_eq!(ROUTE, format!("POST {API_ROOT}"));
        assert!(is_text_xml(Some("text/xml")));
        assert!(is_text_xml(Some("Text/XML ; charset=utf-8")));
        assert!(!is_text_xml(Some("application/soap+xml; charset=utf-8")));
        assert!(!is_text_xml(Some("text/xmlx")));
        assert!(!is_text_xml(None));
    }
}
