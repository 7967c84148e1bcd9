//! Request bodies that are not JSON, and response bodies read as a stream under a size cap.

use std::fmt;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::io::StreamReader;

use super::source_chain;

/// A request body that is not JSON (a SOAP envelope): its bytes, content type and extra
/// headers (`SOAPAction`). `Debug` shows the sizes only: a body may carry a credential.
#[derive(Clone)]
pub struct RawBody {
    /// The `Content-Type` header.
    pub content_type: HeaderValue,
    /// Further headers, e.g. `SOAPAction`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub bytes: Bytes,
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RawBody({} bytes of {:?}, {} extra headers)",
            self.bytes.len(),
            self.content_type,
            self.headers.len()
        )
    }
}

/// The body of a successful response as an async buffered reader, failing with an
/// `io::Error` that [`HttpClient::body_error`](super::HttpClient::body_error) classifies once more than `max_response_bytes`
/// arrive or the connection breaks.
pub type BodyReader = StreamReader<BoxStream<'static, std::io::Result<Bytes>>, Bytes>;

/// A 2xx response whose body has not been read yet ([`HttpClient::send_streaming`](super::HttpClient::send_streaming)).
pub struct StreamingResponse {
    /// The HTTP status (always 2xx).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    body: Option<BodyReader>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    pub(super) fn new(response: reqwest::Response, cap: u64) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let mut seen: u64 = 0;
        let stream = response
            .bytes_stream()
            .map(move |chunk| match chunk {
                Ok(bytes) => {
                    seen = seen.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
                    if seen > cap {
                        Err(std::io::Error::other(BodyTooLarge { cap }))
                    } else {
                        Ok(bytes)
                    }
                }
                Err(err) => Err(std::io::Error::other(BodyNetworkError {
                    timeout: err.is_timeout(),
                    detail: source_chain(&err),
                })),
            })
            .boxed();
        Self {
            status,
            headers,
            body: Some(StreamReader::new(stream)),
            permit: None,
        }
    }

    /// The body, to be read once (later calls get `None`). Dropping it unread closes the
    /// connection.
    pub fn body(&mut self) -> Option<BodyReader> {
        self.body.take()
    }

    /// The `Content-Type` header's media type, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let value = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next()?.trim().to_ascii_lowercase();
        (!media.is_empty()).then_some(media)
    }
}

/// A streamed body went over the cap.
#[derive(Debug)]
pub(super) struct BodyTooLarge {
    pub(super) cap: u64,
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the response is larger than {} bytes", self.cap)
    }
}

impl std::error::Error for BodyTooLarge {}

/// A streamed body broke off (reset, timeout).
#[derive(Debug)]
pub(super) struct BodyNetworkError {
    pub(super) timeout: bool,
    pub(super) detail: String,
}

impl fmt::Display for BodyNetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timeout {
            write!(f, "timed out reading the response")
        } else {
            write!(f, "the connection broke: {}", self.detail)
        }
    }
}

impl std::error::Error for BodyNetworkError {}

/// Why a body could not be read.
pub(super) enum BodyError {
    TooLarge,
    Network(reqwest::Error),
}

/// Reads a body chunk by chunk and stops at `cap` bytes: with `truncate`, keeps the first
/// `cap` bytes; otherwise fails with `TooLarge`.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
    truncate: bool,
) -> Result<Bytes, BodyError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Network)? {
        if body.len().saturating_add(chunk.len()) > cap {
            if truncate {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                break;
            }
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
