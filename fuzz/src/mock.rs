//! A loopback HTTP server that answers every request with the input under test, so an
//! adapter's own client, pager, stream reader and mapping read it exactly as they read a
//! target's answer. A Jama token request gets a valid token instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, Response, StatusCode};
use axum::serve::ListenerExt;
use axum::Router;
use bytes::Bytes;

/// The answer the server gives next: the body, its content type, and the size of the chunks
/// it is sent in (a streaming reader must not depend on where chunks end).
#[derive(Clone)]
struct Answer {
    body: Bytes,
    content_type: &'static str,
    chunk: usize,
}

/// The server, serving until the runtime it was started on ends.
#[derive(Clone)]
pub struct MockTarget {
    answer: Arc<Mutex<Answer>>,
    addr: SocketAddr,
}

impl MockTarget {
    /// Binds a free loopback port on the current runtime and serves.
    pub async fn start(content_type: &'static str) -> MockTarget {
        let answer = Arc::new(Mutex::new(Answer {
            body: Bytes::new(),
            content_type,
            chunk: usize::MAX,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the mock target");
        let addr = listener.local_addr().expect("the mock target's address");
        let app = Router::new()
            .fallback(answer_request)
            .with_state(answer.clone());
        // No Nagle: an answer sent in small chunks must not wait on delayed ACKs.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockTarget { answer, addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes every later request answer `body`, sent in chunks of `chunk` bytes.
    pub fn answer_with(&self, body: &[u8], chunk: usize) {
        if let Ok(mut answer) = self.answer.lock() {
            answer.body = Bytes::copy_from_slice(body);
            answer.chunk = chunk.max(1);
        }
    }
}

/// A chunk size for `input`: whole most of the time, else small pieces, chosen from the
/// input's bytes so a saved input replays the same way.
pub fn chunk_size(input: &[u8]) -> usize {
    let sum = input
        .iter()
        .take(64)
        .fold(0usize, |acc, b| acc.wrapping_add(usize::from(*b)));
    match sum % 4 {
        0 => 1 + sum % 7,
        1 => 1 + sum % 512,
        _ => usize::MAX,
    }
}

async fn answer_request(
    State(answer): State<Arc<Mutex<Answer>>>,
    request: Request<Body>,
) -> Response<Body> {
    if request.uri().path().ends_with("/oauth/token") {
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"access_token":"fuzz-token","token_type":"bearer","expires_in":3600}"#,
            ))
            .unwrap_or_default();
    }
    let answer = answer.lock().map(|a| a.clone()).ok();
    let Some(answer) = answer else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::empty())
            .unwrap_or_default();
    };
    let chunks: Vec<Result<Bytes, Infallible>> = if answer.chunk >= answer.body.len() {
        vec![Ok(answer.body.clone())]
    } else {
        answer
            .body
            .chunks(answer.chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    };
    Response::builder()
        .header(header::CONTENT_TYPE, answer.content_type)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap_or_default()
}
