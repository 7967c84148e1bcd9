//! SOAP building blocks, usable by any SOAP target: envelopes, faults and a client that reads
//! responses as a stream.
//!
//! * **Envelopes** ([`envelope`]): SOAP 1.1 or 1.2 around body content the adapter renders
//!   (from templates whose values are XML-escaped).
//! * **Transport** ([`SoapClient`]): `POST` to the endpoint through the shared
//!   [`HttpClient`] (timeouts, pacing, body cap, no redirects, metrics), with the configured
//!   `SOAPAction` header (1.1) or `action` parameter (1.2) and content type.
//! * **Faults** ([`Fault`]): SOAP 1.1 `faultcode`/`faultstring`/`detail` and SOAP 1.2
//!   `Code/Value`/`Reason/Text`/`Detail`, found in an error response (HTTP 500) or a 200.
//!   Classified ([`fault_error`]): `Client`/`Sender` are permanent — or auth, when the
//!   adapter recognises a rejected login — `Server`/`Receiver` transient, the rest permanent.
//! * **Responses** are read with [`XmlReader`]: element by element as
//!   the body arrives, DOCTYPE and entity declarations refused, depth and size capped.
//! * **Secrets in bodies** ([`BodySecret`]): a target whose credentials travel inside every
//!   body (Duck Creek) redacts them, raw and XML-escaped, from every message built from a
//!   response.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::http::{BodyReader, Credential, HttpClient, RawBody, StreamingResponse};
use super::xml::{escape, excerpt, Element, XmlError, XmlReader};
use super::ConnectorError;

/// The SOAP 1.1 envelope namespace.
pub const SOAP_1_1: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The SOAP 1.2 envelope namespace.
pub const SOAP_1_2: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The longest fault text quoted in an error.
const FAULT_TEXT_CHARS: usize = 300;

pub use crate::config::SoapVersion;

/// What each SOAP version means on the wire.
impl SoapVersion {
    /// The envelope namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V1_1 => SOAP_1_1,
            SoapVersion::V1_2 => SOAP_1_2,
        }
    }

    /// The content type requests carry unless configured otherwise.
    pub fn default_content_type(self) -> &'static str {
        match self {
            SoapVersion::V1_1 => "text/xml; charset=utf-8",
            SoapVersion::V1_2 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// How requests to one SOAP endpoint are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapSettings {
    /// The SOAP version.
    pub version: SoapVersion,
    /// SOAP 1.1: the `SOAPAction` header, sent quoted (`Some("")`: `SOAPAction: ""`);
    /// `None`: no header, as Saviynt's published Duck Creek package sends. SOAP 1.2: the
    /// `action` parameter of the content type, left out when `None` or empty.
    pub action: Option<String>,
    /// The request content type; `None`: the version's default.
    pub content_type: Option<String>,
    /// How deep response elements may nest.
    pub max_depth: usize,
}

/// A SOAP envelope of `version` around `body` (already-escaped XML content).
pub fn envelope(version: SoapVersion, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soapenv:Envelope xmlns:soapenv=\"{}\">\
         <soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>",
        version.namespace()
    )
}

/// A SOAP fault as the target sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// The fault code's local part (`Client`, `Server`, `Sender`, `Receiver`,
    /// `VersionMismatch`, `Client.Authentication`, …).
    pub code: String,
    /// SOAP 1.2 `Code/Subcode/Value`, local part.
    pub subcode: Option<String>,
    /// `faultstring` (1.1) or `Reason/Text` (1.2).
    pub reason: String,
    /// The text of `detail` / `Detail`, if any.
    pub detail: Option<String>,
}

impl Fault {
    /// The first segment of the code (`Client` for `Client.Authentication`).
    pub fn base_code(&self) -> &str {
        self.code.split('.').next().unwrap_or(&self.code)
    }

    /// Whether the code says the request is at fault (`Client` or `Sender`).
    pub fn is_client(&self) -> bool {
        matches!(self.base_code(), "Client" | "Sender")
    }

    /// Whether the code says the server is at fault (`Server` or `Receiver`).
    pub fn is_server(&self) -> bool {
        matches!(self.base_code(), "Server" | "Receiver")
    }

    /// `code: reason (detail)`, shortened, for error messages.
    pub fn describe(&self) -> String {
        let mut text = format!("SOAP fault {}", self.code);
        if let Some(subcode) = &self.subcode {
            text.push_str(&format!(" ({subcode})"));
        }
        if !self.reason.trim().is_empty() {
            text.push_str(&format!(": {}", excerpt(&self.reason, FAULT_TEXT_CHARS)));
        }
        if let Some(detail) = self.detail.as_deref().filter(|d| !d.trim().is_empty()) {
            text.push_str(&format!(" [detail: {}]", excerpt(detail, FAULT_TEXT_CHARS)));
        }
        text
    }
}

/// Recognises a fault that means the target rejected our credentials (adapter-specific).
pub type AuthFaultFn = fn(&Fault) -> bool;

/// The classified error of `fault`: `Client`/`Sender` → `Auth` when `is_auth` says the
/// credentials were rejected, else `Permanent`; `Server`/`Receiver` → `Transient`; any other
/// code → `Permanent`. `status` is the HTTP status it came with.
pub fn fault_error(
    target: &str,
    status: StatusCode,
    fault: &Fault,
    is_auth: AuthFaultFn,
) -> ConnectorError {
    let message = fault.describe();
    let target = target.to_string();
    if fault.is_server() {
        ConnectorError::Transient {
            target,
            message: format!("HTTP {}: {message}", status.as_u16()),
        }
    } else if fault.is_client() && is_auth(fault) {
        ConnectorError::Auth { target, message }
    } else {
        ConnectorError::Permanent {
            target,
            status: Some(status.as_u16()),
            message,
        }
    }
}

/// The classified error of an error response whose body is a SOAP fault; `None` when it is
/// not (the status then decides). For an adapter's
/// [`ReadErrorFn`](super::http::ReadErrorFn).
pub fn classify_fault_body(
    target: &str,
    status: StatusCode,
    body: &[u8],
    is_auth: AuthFaultFn,
) -> Option<ConnectorError> {
    // A byte slice never makes the reader wait, so the future completes on its first poll.
    let fault = read_fault_document(body).now_or_never()?.ok()??;
    Some(fault_error(target, status, &fault, is_auth))
}

/// The fault of a whole envelope held in memory; `Ok(None)` when it is not a fault envelope.
async fn read_fault_document(body: &[u8]) -> Result<Option<Fault>, XmlError> {
    let mut reader = XmlReader::new(body, super::xml::DEFAULT_MAX_DEPTH);
    let Some(root) = reader.next_child().await? else {
        return Ok(None);
    };
    if root.local != "Envelope" || !is_soap_namespace(root.namespace.as_deref()) {
        return Ok(None);
    }
    while let Some(part) = reader.next_child().await? {
        if part.local != "Body" {
            reader.skip(&part).await?;
            continue;
        }
        while let Some(child) = reader.next_child().await? {
            if child.local == "Fault" && is_soap_namespace(child.namespace.as_deref()) {
                return read_fault(&mut reader, &child).await.map(Some);
            }
            reader.skip(&child).await?;
        }
    }
    Ok(None)
}

/// Whether `namespace` is one of the SOAP envelope namespaces.
fn is_soap_namespace(namespace: Option<&str>) -> bool {
    matches!(namespace, Some(SOAP_1_1 | SOAP_1_2))
}

/// Reads the content of a `Fault` element (1.1 or 1.2) that `next_child` just returned.
pub async fn read_fault<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut XmlReader<R>,
    fault: &Element,
) -> Result<Fault, XmlError> {
    let mut out = Fault::default();
    if fault.empty {
        return Ok(out);
    }
    while let Some(part) = reader.next_child().await? {
        match part.local.as_str() {
            // SOAP 1.1.
            "faultcode" => out.code = local_part(reader.text(&part).await?.trim()),
            "faultstring" => out.reason = reader.text(&part).await?.trim().to_string(),
            "detail" | "Detail" => {
                let text = reader.text(&part).await?;
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                out.detail = (!text.is_empty()).then_some(text);
            }
            // SOAP 1.2.
            "Code" => {
                if part.empty {
                    continue;
                }
                while let Some(item) = reader.next_child().await? {
                    match item.local.as_str() {
                        "Value" => out.code = local_part(reader.text(&item).await?.trim()),
                        "Subcode" => {
                            let text = reader.text(&item).await?;
                            let text = local_part(text.trim());
                            out.subcode = (!text.is_empty()).then_some(text);
                        }
                        _ => reader.skip(&item).await?,
                    }
                }
            }
            "Reason" => {
                if part.empty {
                    continue;
                }
                while let Some(item) = reader.next_child().await? {
                    if item.local == "Text" && out.reason.is_empty() {
                        out.reason = reader.text(&item).await?.trim().to_string();
                    } else {
                        reader.skip(&item).await?;
                    }
                }
            }
            _ => reader.skip(&part).await?,
        }
    }
    Ok(out)
}

/// `Client` for `soapenv:Client`.
fn local_part(qualified: &str) -> String {
    qualified
        .rsplit_once(':')
        .map_or(qualified, |(_, local)| local)
        .to_string()
}

/// A credential that travels inside request bodies (Duck Creek's login element): nothing is
/// added to the request, but the secret — as it is and XML-escaped — is redacted from every
/// message built from a response.
pub struct BodySecret {
    secret: SecretString,
}

impl BodySecret {
    /// Wraps the secret.
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }
}

impl fmt::Debug for BodySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodySecret([REDACTED])")
    }
}

#[async_trait]
impl Credential for BodySecret {
    async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, ConnectorError> {
        Ok(request)
    }

    fn redact(&self, text: &str) -> String {
        redact_secret(text, self.secret.expose_secret())
    }
}

/// `text` with `secret`, and its XML-escaped form, replaced by `[REDACTED]`.
pub fn redact_secret(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    let mut clean = text.replace(secret, "[REDACTED]");
    let escaped = escape(secret);
    if escaped != secret {
        clean = clean.replace(escaped.as_ref(), "[REDACTED]");
    }
    clean
}

/// Whether a request may be repeated after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A read: retried under `read_retry` until the payload starts arriving.
    Read,
    /// A change: sent once.
    Write,
}

/// The SOAP client of one target: envelopes posted to one endpoint, responses read as a
/// stream.
pub struct SoapClient {
    http: HttpClient,
    url: Url,
    version: SoapVersion,
    content_type: HeaderValue,
    headers: Vec<(HeaderName, HeaderValue)>,
    max_depth: usize,
    is_auth: AuthFaultFn,
}

impl fmt::Debug for SoapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoapClient")
            .field("http", &self.http)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl SoapClient {
    /// A client posting to `http`'s base URL (the endpoint itself) with `settings`;
    /// `is_auth` tells a rejected login among `Client` faults. Fails (`Permanent`) when the
    /// action or content type cannot be sent as a header.
    pub fn new(
        http: HttpClient,
        settings: &SoapSettings,
        is_auth: AuthFaultFn,
    ) -> Result<Self, ConnectorError> {
        let target = http.target().to_string();
        let mut content_type = settings
            .content_type
            .clone()
            .unwrap_or_else(|| settings.version.default_content_type().to_string());
        let mut headers = Vec::new();
        match settings.version {
            SoapVersion::V1_1 => {
                if let Some(action) = &settings.action {
                    // Sent quoted, as SOAP 1.1 asks (`SOAPAction: ""` when empty).
                    let quoted = format!("\"{}\"", action.trim_matches('"'));
                    let value = HeaderValue::from_str(&quoted).map_err(|_| {
                        ConnectorError::config(
                            &target,
                            format!("soap_action `{action}` cannot be sent as an HTTP header"),
                        )
                    })?;
                    headers.push((HeaderName::from_static("soapaction"), value));
                }
            }
            SoapVersion::V1_2 => {
                let action = settings.action.as_deref().unwrap_or_default();
                if !action.is_empty() && !content_type.contains("action=") {
                    content_type.push_str(&format!("; action=\"{}\"", action.trim_matches('"')));
                }
            }
        }
        let content_type = HeaderValue::from_str(&content_type).map_err(|_| {
            ConnectorError::config(
                &target,
                format!("content_type `{content_type}` cannot be sent as an HTTP header"),
            )
        })?;
        let url = http.base_url().clone();
        Ok(Self {
            http,
            url,
            version: settings.version,
            content_type,
            headers,
            max_depth: settings.max_depth,
            is_auth,
        })
    }

    /// The target's config name.
    pub fn target(&self) -> &str {
        self.http.target()
    }

    /// The SOAP version in use.
    pub fn version(&self) -> SoapVersion {
        self.version
    }

    /// The shared HTTP client (for redaction and body errors).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Posts an envelope around `body` (escaped XML content; it may hold a credential and is
    /// never logged) and reads the response up to the first element inside `Body`. `what`
    /// names the call in errors. A fault — with HTTP 500 or 200 — is the classified error
    /// ([`fault_error`]); so is a response that is not a SOAP envelope. Reads
    /// ([`CallKind::Read`]) are retried on transient errors until the payload starts.
    pub async fn call(
        &self,
        what: &str,
        body: &str,
        kind: CallKind,
    ) -> Result<SoapResponse, ConnectorError> {
        let raw = RawBody {
            content_type: self.content_type.clone(),
            headers: self.headers.clone(),
            bytes: Bytes::from(envelope(self.version, body)),
        };
        match kind {
            CallKind::Write => self.attempt(what, &raw).await,
            CallKind::Read => {
                self.http
                    .retrying_read(&self.url, || self.attempt(what, &raw))
                    .await
            }
        }
    }

    /// One post, read up to the payload.
    async fn attempt(&self, what: &str, raw: &RawBody) -> Result<SoapResponse, ConnectorError> {
        let mut response = self
            .http
            .send_streaming(Method::POST, &self.url, raw)
            .await?;
        let media = response.media_type().unwrap_or_default();
        if !media.contains("xml") {
            return Err(ConnectorError::malformed(
                self.target(),
                format!(
                    "the answer to {what} is `{}`, not a SOAP envelope (check base_url: it \
                     must be the SOAP endpoint itself)",
                    if media.is_empty() {
                        "without a content type"
                    } else {
                        media.as_str()
                    }
                ),
            ));
        }
        let status = response.status;
        let Some(body) = response.body() else {
            return Err(ConnectorError::malformed(
                self.target(),
                format!("the answer to {what} has no body"),
            ));
        };
        let mut answer = SoapResponse {
            reader: XmlReader::new(body, self.max_depth),
            what: what.to_string(),
            _response: response,
            payload: None,
        };
        match answer.open_body(self, status).await {
            Ok(Some(payload)) => {
                answer.payload = Some(payload);
                Ok(answer)
            }
            Ok(None) => Err(ConnectorError::malformed(
                self.target(),
                format!("the SOAP Body of the answer to {what} is empty"),
            )),
            Err(err) => Err(err),
        }
    }

    /// The connector error of a reader error while reading the answer to `what`.
    pub fn read_error(&self, what: &str, err: XmlError) -> ConnectorError {
        match err {
            XmlError::Io(io) => {
                self.http
                    .body_error(&io, what)
                    .unwrap_or_else(|| ConnectorError::Transient {
                        target: self.target().to_string(),
                        message: format!("reading the answer to {what} failed: {io}"),
                    })
            }
            other => ConnectorError::malformed(
                self.target(),
                self.http
                    .redact(&format!("the answer to {what} cannot be read: {other}")),
            ),
        }
    }
}

/// A SOAP response being read: the reader stands inside `Body`, at its first element.
pub struct SoapResponse {
    reader: XmlReader<BodyReader>,
    what: String,
    /// Holds the connection and the concurrency slot until the body is read.
    _response: StreamingResponse,
    payload: Option<Element>,
}

impl fmt::Debug for SoapResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoapResponse")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl SoapResponse {
    /// The first element inside `Body` (once; later calls get `None`). Read its content with
    /// [`reader`](Self::reader).
    pub fn payload(&mut self) -> Option<Element> {
        self.payload.take()
    }

    /// The reader, standing where the caller left it.
    pub fn reader(&mut self) -> &mut XmlReader<BodyReader> {
        &mut self.reader
    }

    /// What the request was, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Reads the rest of the document (the payload must have been left): only whitespace
    /// and closing tags may remain, and the document must end complete.
    pub async fn finish(&mut self, client: &SoapClient) -> Result<(), ConnectorError> {
        while let Some(extra) = self
            .reader
            .next_child()
            .await
            .map_err(|err| client.read_error(&self.what, err))?
        {
            // A second Body child or trailing elements are read past, not trusted.
            self.reader
                .skip(&extra)
                .await
                .map_err(|err| client.read_error(&self.what, err))?;
        }
        self.reader
            .finish()
            .await
            .map_err(|err| client.read_error(&self.what, err))
    }

    /// Reads `Envelope`, skips `Header`, enters `Body` and returns its first element; a
    /// `Fault` there is returned as its classified error.
    async fn open_body(
        &mut self,
        client: &SoapClient,
        status: StatusCode,
    ) -> Result<Option<Element>, ConnectorError> {
        let what = self.what.clone();
        let fail = |err: XmlError| client.read_error(&what, err);
        let root = self.reader.next_child().await.map_err(&fail)?;
        let Some(root) = root else {
            return Err(ConnectorError::malformed(
                client.target(),
                format!("the answer to {what} is empty"),
            ));
        };
        let expected = client.version.namespace();
        if root.local != "Envelope" || root.namespace.as_deref() != Some(expected) {
            let found = match &root.namespace {
                Some(namespace) => format!("<{}> in namespace {namespace}", root.local),
                None => format!("<{}> without a namespace", root.local),
            };
            return Err(ConnectorError::malformed(
                client.target(),
                format!(
                    "the answer to {what} is not a SOAP {} envelope: it starts with {found}",
                    client.version.as_str()
                ),
            ));
        }
        while let Some(part) = self.reader.next_child().await.map_err(&fail)? {
            if part.local == "Header" {
                self.reader.skip(&part).await.map_err(&fail)?;
                continue;
            }
            if part.local != "Body" || part.namespace.as_deref() != Some(expected) {
                return Err(ConnectorError::malformed(
                    client.target(),
                    format!(
                        "the answer to {what} has <{}> where the SOAP Body belongs",
                        part.local
                    ),
                ));
            }
            let Some(first) = self.reader.next_child().await.map_err(&fail)? else {
                return Ok(None);
            };
            if first.local == "Fault" && first.namespace.as_deref() == Some(expected) {
                let fault = read_fault(&mut self.reader, &first).await.map_err(&fail)?;
                let err = fault_error(client.target(), status, &fault, client.is_auth);
                return Err(err.map_text(|text| client.http.redact(&text)));
            }
            return Ok(Some(first));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::config::TargetConfig;
    use crate::connector::http::{ClientDefaults, ErrorReading};
    use crate::connector::kit::testing::assert_error;
    use crate::connector::ErrorClass;

    const PASSWORD: &str = "pa<ss>&'w0rd-UNMISTAKABLE";

    fn fault_11(code: &str, text: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_1_1}"><soap:Body><soap:Fault>
            <faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring>
            <detail><Error>more about it</Error></detail></soap:Fault></soap:Body></soap:Envelope>"#
        )
    }

    fn fault_12(code: &str, sub: &str, text: &str) -> String {
        format!(
            r#"<env:Envelope xmlns:env="{SOAP_1_2}" xmlns:m="urn:m"><env:Body><env:Fault>
            <env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>m:{sub}</env:Value></env:Subcode></env:Code>
            <env:Reason><env:Text xml:lang="en">{text}</env:Text></env:Reason>
            <env:Detail><m:x>d</m:x></env:Detail></env:Fault></env:Body></env:Envelope>"#
        )
    }

    fn login_rejected(fault: &Fault) -> bool {
        fault.reason.to_ascii_lowercase().contains("login")
    }

    #[test]
    fn parses_and_classifies_soap_1_1_faults() {
        let always = |_: &Fault| true;
        for (code, reason, is_auth, class, wanted) in [
            (
                "Client",
                "Login failed",
                login_rejected as AuthFaultFn,
                ErrorClass::Auth,
                "SOAP fault Client: Login failed",
            ),
            (
                "Client",
                "Bad request element",
                login_rejected,
                ErrorClass::Permanent,
                "detail: more about it",
            ),
            (
                "Server",
                "Database unavailable",
                login_rejected,
                ErrorClass::Transient,
                "Database unavailable",
            ),
            (
                "Client.Authentication",
                "nope",
                always,
                ErrorClass::Auth,
                "nope",
            ),
            (
                "VersionMismatch",
                "wrong envelope",
                always,
                ErrorClass::Permanent,
                "wrong envelope",
            ),
        ] {
            let body = fault_11(code, reason);
            let err = classify_fault_body(
                "dc",
                StatusCode::INTERNAL_SERVER_ERROR,
                body.as_bytes(),
                is_auth,
            )
            .unwrap();
            assert_eq!(err.class(), class, "{code}: {err}");
            assert!(err.to_string().contains(wanted), "{code}: {err}");
        }
    }

    #[test]
    fn parses_and_classifies_soap_1_2_faults() {
        let body = fault_12("Sender", "BadArgs", "Invalid input");
        let err = classify_fault_body(
            "dc",
            StatusCode::BAD_REQUEST,
            body.as_bytes(),
            login_rejected,
        )
        .unwrap();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let text = err.to_string();
        assert!(
            text.contains("SOAP fault Sender (BadArgs): Invalid input"),
            "{text}"
        );
        let body = fault_12("Receiver", "Busy", "Try later");
        let err = classify_fault_body(
            "dc",
            StatusCode::INTERNAL_SERVER_ERROR,
            body.as_bytes(),
            login_rejected,
        )
        .unwrap();
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn bodies_that_are_not_faults_are_left_to_the_status() {
        for body in [
            "<html>oops</html>",
            "",
            "not xml at all",
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><X/></soap:Body></soap:Envelope>"#,
            "<!DOCTYPE x><x/>",
        ] {
            assert!(
                classify_fault_body(
                    "dc",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body.as_bytes(),
                    |_| true
                )
                .is_none(),
                "{body}"
            );
        }
    }

    #[test]
    fn envelopes_carry_the_versions_namespace() {
        assert!(envelope(SoapVersion::V1_1, "<x/>").contains(SOAP_1_1));
        assert!(envelope(SoapVersion::V1_2, "<x/>").contains(SOAP_1_2));
        assert!(envelope(SoapVersion::V1_1, "<x/>").contains("<soapenv:Body><x/></soapenv:Body>"));
    }

    #[test]
    fn body_secrets_are_redacted_raw_and_escaped() {
        let secret = BodySecret::new(SecretString::from(PASSWORD));
        let echoed = format!("login {PASSWORD} or {} failed", escape(PASSWORD));
        let clean = secret.redact(&echoed);
        assert_eq!(clean, "login [REDACTED] or [REDACTED] failed");
        assert!(!format!("{secret:?}").contains("UNMISTAKABLE"));
    }

    fn client(server: &MockServer, version: SoapVersion, action: Option<&str>) -> SoapClient {
        let config: TargetConfig = toml::from_str(&format!(
            "kind = \"digicert\"\nbase_url = \"{}/Server/Server.asmx\"\nrate_limit = []\n\
             read_retry = {{ max_attempts = 3, initial_backoff = \"1ms\", max_backoff = \"5ms\" }}\n\
             max_response_bytes = 4096\n",
            server.uri()
        ))
        .unwrap();
        let defaults = ClientDefaults {
            read_error: |target, status, body| match classify_fault_body(
                target,
                status,
                body,
                login_rejected,
            ) {
                Some(err) => ErrorReading::Classified(err),
                None => ErrorReading::Unknown,
            },
            ..ClientDefaults::default()
        };
        let http = HttpClient::new(
            "dc",
            &config,
            defaults,
            Arc::new(BodySecret::new(SecretString::from(PASSWORD))),
        )
        .unwrap();
        let settings = SoapSettings {
            version,
            action: action.map(str::to_string),
            content_type: None,
            max_depth: 16,
        };
        SoapClient::new(http, &settings, login_rejected).unwrap()
    }

    fn xml(status: u16, body: impl Into<String>) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_raw(body.into(), "text/xml; charset=utf-8")
    }

    #[tokio::test]
    async fn posts_with_the_soap_action_and_reads_the_payload() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/Server/Server.asmx"))
            .and(header("SOAPAction", "\"\""))
            .and(header("Content-Type", "text/xml; charset=utf-8"))
            .and(body_string_contains("<soapenv:Body><ping/></soapenv:Body>"))
            .respond_with(xml(
                200,
                format!(
                    r#"<s:Envelope xmlns:s="{SOAP_1_1}"><s:Header><h/></s:Header><s:Body><pong n="1"><x/></pong></s:Body></s:Envelope>"#
                ),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let client = client(&server, SoapVersion::V1_1, Some(""));
        let mut response = client
            .call("ping", "<ping/>", CallKind::Read)
            .await
            .unwrap();
        let payload = response.payload().unwrap();
        assert_eq!(
            (payload.local.as_str(), payload.attr("n")),
            ("pong", Some("1"))
        );
        response.reader().skip(&payload).await.unwrap();
        response.finish(&client).await.unwrap();
    }

    #[tokio::test]
    async fn no_action_sends_no_soap_action_header() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(
                200,
                format!(
                    r#"<s:Envelope xmlns:s="{SOAP_1_1}"><s:Body><pong/></s:Body></s:Envelope>"#
                ),
            ))
            .mount(&server)
            .await;
        let mut response = client(&server, SoapVersion::V1_1, None)
            .call("ping", "<ping/>", CallKind::Read)
            .await
            .unwrap();
        assert_eq!(response.payload().unwrap().local, "pong");
        // The answer is a 1.1 envelope; only the request matters here.
        let soap_1_2 = client(&server, SoapVersion::V1_2, None)
            .call("ping", "<ping/>", CallKind::Write)
            .await;
        assert!(soap_1_2.is_err());
        let received = server.received_requests().await.unwrap();
        assert_eq!(received.len(), 2);
        for request in &received {
            assert!(
                !request.headers.contains_key("soapaction"),
                "{:?}",
                request.headers
            );
        }
        assert_eq!(
            received[0].headers["content-type"],
            "text/xml; charset=utf-8"
        );
        assert_eq!(
            received[1].headers["content-type"], "application/soap+xml; charset=utf-8",
            "no action parameter"
        );
    }

    #[tokio::test]
    async fn soap_1_2_sends_the_action_in_the_content_type() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header(
                "Content-Type",
                "application/soap+xml; charset=utf-8; action=\"urn:ping\"",
            ))
            .respond_with(ResponseTemplate::new(500).set_body_raw(
                fault_12("Receiver", "Busy", "later"),
                "application/soap+xml",
            ))
            .mount(&server)
            .await;
        let client = client(&server, SoapVersion::V1_2, Some("urn:ping"));
        let err = client
            .call("ping", "<ping/>", CallKind::Write)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        assert!(err.to_string().contains("later"), "{err}");
        // A write is sent once.
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn server_faults_are_retried_for_reads_and_client_faults_are_not() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(500, fault_11("Server", "busy")))
            .mount(&server)
            .await;
        let client = client(&server, SoapVersion::V1_1, Some(""));
        let err = client
            .call("list", "<l/>", CallKind::Read)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
        assert_eq!(server.received_requests().await.unwrap().len(), 3);

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(
                500,
                fault_11("Client", &format!("Login failed for {}", escape(PASSWORD))),
            ))
            .mount(&server)
            .await;
        let client = self::client(&server, SoapVersion::V1_1, Some(""));
        let err = client
            .call("list", "<l/>", CallKind::Read)
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Auth);
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        let text = format!("{err} {err:?}");
        assert!(!text.contains("UNMISTAKABLE"), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }

    #[tokio::test]
    async fn a_fault_in_a_200_is_still_a_fault() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(xml(200, fault_11("Client", "Unknown request")))
            .mount(&server)
            .await;
        let client = client(&server, SoapVersion::V1_1, Some(""));
        let err = client.call("x", "<x/>", CallKind::Write).await.unwrap_err();
        assert_error(&err, ErrorClass::Permanent, "Unknown request");
    }

    #[tokio::test]
    async fn answers_that_are_not_envelopes_are_clear_errors() {
        for (response, wanted) in [
            (
                ResponseTemplate::new(200).set_body_raw("<html>login</html>", "text/html"),
                "`text/html`, not a SOAP envelope",
            ),
            (xml(200, "<Envelope/>"), "not a SOAP 1.1 envelope"),
            (
                xml(200, format!(r#"<s:Envelope xmlns:s="{SOAP_1_2}"/>"#)),
                "in namespace http://www.w3.org/2003/05/soap-envelope",
            ),
            (
                xml(
                    200,
                    format!(r#"<s:Envelope xmlns:s="{SOAP_1_1}"><s:Body/></s:Envelope>"#),
                ),
                "Body of the answer to x is empty",
            ),
            (
                xml(
                    200,
                    format!(r#"<s:Envelope xmlns:s="{SOAP_1_1}"><s:Body><a>"#),
                ),
                "ends early",
            ),
            (
                xml(
                    200,
                    format!("<!DOCTYPE x [<!ENTITY a \"b\">]><s:Envelope xmlns:s=\"{SOAP_1_1}\"/>"),
                ),
                "DOCTYPE",
            ),
            (xml(200, "x".repeat(5000)), "larger than max_response_bytes"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let client = client(&server, SoapVersion::V1_1, Some(""));
            let err = match client.call("x", "<x/>", CallKind::Write).await {
                Ok(mut response) => {
                    let payload = response.payload().unwrap();
                    let reader = response.reader();
                    let skipped = reader.skip(&payload).await;
                    match skipped {
                        Err(err) => client.read_error("x", err),
                        Ok(()) => response.finish(&client).await.unwrap_err(),
                    }
                }
                Err(err) => err,
            };
            assert!(err.to_string().contains(wanted), "{wanted}: {err}");
            assert_ne!(err.class(), ErrorClass::Transient, "{err}");
        }
    }
}
