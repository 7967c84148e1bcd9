//! The API's edges: the request-body limit, and the answers for requests no handler takes
//! (bad query strings, bad paths and bodies, unknown routes, wrong methods), all in the
//! API's JSON error shape `{"error": "..."}`.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, OriginalUri, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The largest request body the API reads: 1 MiB. A task is a few hundred bytes.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// How much of an oversized body is read and thrown away before answering 413, so the client
/// (still sending) reads the answer instead of a reset connection. A larger body is cut off.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// A JSON error answer: `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A request the API refuses with 400: the message names what was wrong and what is
/// accepted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0)
    }
}

/// The 413 answer, naming the limit.
fn too_large() -> Response {
    let mut response = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body too large: the API reads at most 1 MiB ({BODY_LIMIT_BYTES} bytes); \
             send a smaller body"
        ),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Middleware: reads the request body up to [`BODY_LIMIT_BYTES`] before any handler runs,
/// and answers 413 (JSON) to a larger one. The rest of an oversized body is read and
/// dropped, up to [`DRAIN_LIMIT_BYTES`], so the client gets the answer rather than a
/// connection reset by a server that stopped reading.
pub async fn limit_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > DRAIN_LIMIT_BYTES as u64) {
        return too_large();
    }
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read to its end; send it again",
            );
        };
        seen = seen.saturating_add(chunk.len());
        if seen > DRAIN_LIMIT_BYTES {
            break;
        }
        if seen <= BODY_LIMIT_BYTES {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > BODY_LIMIT_BYTES {
        return too_large();
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

/// The answer to a JSON body an extractor refused: 413 when it is too large, otherwise 400
/// saying what is wrong with the `what` it should have held.
pub fn json_rejection(rejection: JsonRejection, what: &str) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large();
    }
    error(
        StatusCode::BAD_REQUEST,
        format!("invalid {what}: {}", rejection.body_text()),
    )
}

/// A query string, parsed like axum's `Query`, refused with 400 JSON naming the parameter
/// and what is accepted.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("bad query string: {}", rejection.body_text()),
            )),
        }
    }
}

/// A path parameter, parsed like axum's `Path`, refused with 400 JSON (a segment that is not
/// valid UTF-8 once decoded, for one).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(error(
                StatusCode::BAD_REQUEST,
                format!("bad path: {}", rejection.body_text()),
            )),
        }
    }
}

/// Parses the `limit` query parameter: absent means `default`; a larger value than `max`
/// is lowered to `max`; anything but a whole number from 1 up is refused.
pub fn page_limit(raw: Option<&str>, default: u32, max: u32) -> Result<u32, BadRequest> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err(BadRequest(format!(
            "bad query string: `limit` must be a whole number from 1 to {max} (larger values \
             are lowered to {max}), not `{raw}`"
        ))),
        Ok(limit) => Ok(u32::try_from(limit).unwrap_or(max).min(max)),
    }
}

/// Parses a numeric id from the path (`/tasks/{id}`) or an `after` cursor, refused naming
/// `what` and the accepted form.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, BadRequest> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        BadRequest(format!(
            "`{raw}` is not a {what}: give a whole number from 1 to {}",
            i64::MAX
        ))
    })
}

/// The answer for a path under `/api/v1` that no route takes.
pub async fn unknown_route(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no API route {method} {}; see the README's \"HTTP API\" for the routes",
            uri.path()
        ),
    )
}

/// The answer for a route called with a method it does not take.
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}; see the README's \"HTTP API\" for the methods",
            uri.path()
        ),
    )
}

/// The response header carrying the cursor of the next page of a list.
pub const NEXT_AFTER_HEADER: &str = "x-next-after";

/// A list page as the API answers it: the rows as a JSON array and, when more rows follow,
/// the `after` value of the next page in [`NEXT_AFTER_HEADER`] (URL-encoded, so it can be
/// appended to the query string as it is). `rows` holds up to `limit + 1` rows: the extra
/// one only says that more exist and is not sent.
pub fn page<T: serde::Serialize>(
    mut rows: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> Response {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = rows.last().filter(|_| more).map(|row| {
        url::form_urlencoded::byte_serialize(cursor(row).as_bytes()).collect::<String>()
    });
    let mut response = Json(rows).into_response();
    if let Some(value) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(NEXT_AFTER_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_takes_whole_numbers_and_lowers_large_ones() {
        assert_eq!(page_limit(None, 100, 10_000).unwrap(), 100);
        assert_eq!(page_limit(Some("7"), 100, 10_000).unwrap(), 7);
        assert_eq!(page_limit(Some("20000"), 100, 10_000).unwrap(), 10_000);
        for bad in ["abc", "-1", "0", "1.5", "", "99999999999999999999999"] {
            let refused = page_limit(Some(bad), 100, 10_000).unwrap_err().to_string();
            assert!(refused.ends_with(&format!("not `{bad}`")), "{refused}");
        }
        let refused = page_limit(Some("x"), 100, 10_000).unwrap_err();
        assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn ids_are_positive_whole_numbers() {
        assert_eq!(parse_id("42", "task id").unwrap(), 42);
        for bad in ["abc", "-1", "0", "999999999999999999999", "1e3"] {
            assert!(parse_id(bad, "task id").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_page_reports_the_cursor_of_its_last_row() {
        let more = page(vec![1, 2, 3], 2, |n| format!("a|{n}"));
        assert_eq!(more.headers()[NEXT_AFTER_HEADER], "a%7C2");
        let last = page(vec![1, 2], 2, |n| n.to_string());
        assert!(last.headers().get(NEXT_AFTER_HEADER).is_none());
    }
}
