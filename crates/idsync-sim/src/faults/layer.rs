//! The fault layer every simulator's router has: it lets the simulator answer, then breaks
//! a successful answer as the first matching rule with a broken-answer effect says (reset,
//! truncate, malformed, drip, repeat_page, total_drift). Control routes pass untouched.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::stream::{self, StreamExt};

use super::connection::ResetSwitch;
use super::effects::half;
use super::{Breakage, RequestFacts};
use crate::control::CoreAccess;

/// Reads the names of the requests a call carries from its body (SOAP batches), so rules
/// with a `request` matcher can pick calls.
pub(crate) type RequestNames = fn(&[u8]) -> Vec<String>;

/// The largest request body the layer reads to find request names.
const REQUEST_CAP: usize = 64 * 1024 * 1024;

/// How long the part of a `reset` or `truncate` answer that is sent is given to reach the
/// client before the connection ends (real time: this is the transport, not the simulated
/// target). Without it the server may close before the part leaves its buffer.
const FLUSH_PAUSE: Duration = Duration::from_millis(25);

/// Paths under this prefix are the control routes, never broken.
const CONTROL_PREFIX: &str = "/_sim/";

/// What the layer of one simulator needs.
#[derive(Clone)]
struct FaultLayer<C> {
    control: C,
    api_root: &'static str,
    request_names: Option<RequestNames>,
}

/// `router` with the fault layer of the simulator `control` steers, whose API lives under
/// `api_root`; `request_names` reads the request names of a call (SOAP), if the simulator
/// matches them.
pub(crate) fn layer<C>(
    router: Router,
    control: C,
    api_root: &'static str,
    request_names: Option<RequestNames>,
) -> Router
where
    C: CoreAccess + Clone + Send + Sync + 'static,
{
    let state = FaultLayer {
        control,
        api_root,
        request_names,
    };
    router.layer(middleware::from_fn_with_state(state, break_answers::<C>))
}

async fn break_answers<C>(
    State(layer): State<FaultLayer<C>>,
    request: Request,
    next: Next,
) -> Response
where
    C: CoreAccess + Clone + Send + Sync + 'static,
{
    let armed = layer.control.with_core(|core| core.faults.breaks_answers());
    if !armed || request.uri().path().starts_with(CONTROL_PREFIX) {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let switch = request
        .extensions()
        .get::<ConnectInfo<ResetSwitch>>()
        .map(|info| info.0.clone());
    let (request, names) = match layer.request_names {
        None => (request, Vec::new()),
        Some(read) => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, REQUEST_CAP).await else {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            };
            let names = read(&bytes);
            (Request::from_parts(parts, Body::from(bytes)), names)
        }
    };

    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let media = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let below_root = api_path(&path, layer.api_root);
    let facts = RequestFacts {
        method: &method,
        api_root: layer.api_root,
        full_path: &path,
        api_path: below_root.unwrap_or(&path),
        query: query.as_deref(),
        requests: &names,
    };
    let (broken, clock) = layer.control.with_core(|core| {
        let broken = core
            .faults
            .break_answer(&facts, below_root.is_none(), &bytes, &media);
        if let Some((name, _)) = &broken {
            core.stats.record_fault(name);
        }
        (broken, core.clock.clone())
    });
    let Some((effect, breakage)) = broken else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    tracing::debug!(effect, method, path, "Simulator broke an answer.");
    parts.headers.remove(CONTENT_LENGTH);
    let whole = HeaderValue::from(bytes.len());
    let body = match breakage {
        Breakage::Replace(body) => Body::from(body),
        Breakage::Truncate => {
            // The declared length stays the whole body's; the server closes after half.
            parts.headers.insert(CONTENT_LENGTH, whole);
            let first = bytes.slice(..half(bytes.len()));
            let close = stream::once(tokio::time::sleep(FLUSH_PAUSE))
                .filter_map(|()| async { None::<io::Result<Bytes>> });
            Body::from_stream(stream::iter([Ok(first)]).chain(close))
        }
        Breakage::Reset => {
            // Chunked: the client cannot tell the body is incomplete until the reset.
            let first = bytes.slice(..half(bytes.len()));
            let reset = stream::once(async move {
                tokio::time::sleep(FLUSH_PAUSE).await;
                if let Some(switch) = switch {
                    switch.trip();
                }
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset by an injected fault",
                ))
            });
            Body::from_stream(stream::iter([Ok(first)]).chain(reset))
        }
        Breakage::Drip {
            interval,
            chunk_bytes,
        } => {
            parts.headers.insert(CONTENT_LENGTH, whole);
            let chunks = stream::unfold((bytes, 0usize), move |(bytes, sent)| {
                let clock = clock.clone();
                async move {
                    if sent >= bytes.len() {
                        return None;
                    }
                    if sent > 0 {
                        clock.sleep(interval).await;
                    }
                    let end = sent.saturating_add(chunk_bytes).min(bytes.len());
                    let chunk = bytes.slice(sent..end);
                    Some((Ok::<_, io::Error>(chunk), (bytes, end)))
                }
            });
            Body::from_stream(chunks)
        }
    };
    Response::from_parts(parts, body)
}

/// The path below `api_root` (`/user/5`), or `None` outside it.
fn api_path<'a>(path: &'a str, api_root: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(api_root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}
