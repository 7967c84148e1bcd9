//! The Duck Creek SOAP stream reader: batch answers read by the real Duck Creek connector
//! over HTTP, in chunks that end anywhere (`SoapClient` envelope reading, `Batch`,
//! `ListReader`, `map_user`, `map_role`, …), plus the pieces reachable directly: the generic
//! `XmlReader` walk over a chunked byte stream, the fault reader and the error body reader.

use std::io;

use bytes::Bytes;
use idsync::connector::duckcreek::{is_login_fault, read_error};
use idsync::connector::soap::{classify_fault_body, read_fault};
use idsync::connector::xml::{fragment_elements, XmlReader, DEFAULT_MAX_DEPTH};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use tokio_util::io::StreamReader;

use super::adapter::AdapterRig;
use crate::generate::{draw, hostile_text};
use crate::mock::chunk_size;
use crate::runner::Target;

/// Element names of Duck Creek batch answers and SOAP envelopes.
const ELEMENTS: &[&str] = &[
    "Envelope",
    "Header",
    "Body",
    "Fault",
    "faultcode",
    "faultstring",
    "detail",
    "Code",
    "Value",
    "Subcode",
    "Reason",
    "Text",
    "Detail",
    "server",
    "responses",
    "Session.loginRs",
    "Session.closeRs",
    "OnlineData.listEntityUsersRs",
    "Security.listRolesRs",
    "OnlineData.listEntitiesRs",
    "Security.listPrivilegesRs",
    "Users",
    "User",
    "Roles",
    "Role",
    "UserEntityMemberships",
    "UserEntityMembership",
    "Entities",
    "Entity",
    "Privileges",
    "Privilege",
    "Errors",
    "Error",
    "processRequestsAsDOMResult",
];

/// Attribute names the mapping reads.
const ATTRIBUTES: &[&str] = &[
    "status",
    "id",
    "name",
    "email",
    "fullName",
    "description",
    "type",
    "entityName",
    "entityID",
    "code",
    "text",
    "xmlns",
    "xmlns:s",
    "s:mustUnderstand",
];

/// The Duck Creek target.
pub struct DuckCreek {
    rig: AdapterRig,
}

impl DuckCreek {
    /// A Duck Creek connector reading from a mock target.
    pub fn new() -> DuckCreek {
        DuckCreek {
            rig: AdapterRig::new(
                "kind = \"duckcreek\"\nusername = \"fuzz\"\npassword = \"fuzz-password\"",
                "/Server/Server.asmx",
                "text/xml; charset=utf-8",
            ),
        }
    }
}

/// Walks the whole document of `input`, delivered in chunks of `chunk` bytes: enters every
/// other element, reads the text of the rest, reads a `Fault` with the fault reader.
async fn walk(input: &[u8], chunk: usize) {
    let chunks: Vec<io::Result<Bytes>> = input
        .chunks(chunk.clamp(1, input.len().max(1)))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let source = StreamReader::new(futures::stream::iter(chunks));
    let mut reader = XmlReader::new(source, DEFAULT_MAX_DEPTH);
    let mut seen = 0usize;
    loop {
        let depth = reader.depth();
        let element = match reader.next_child().await {
            Ok(Some(element)) => element,
            // At the end of the input `next_child` keeps answering `None` without leaving
            // an element; `finish` then says whether the document was complete.
            Ok(None) if reader.depth() == 0 || reader.depth() == depth => break,
            Ok(None) => continue,
            Err(err) => {
                let _ = err.to_string();
                return;
            }
        };
        seen += 1;
        let _ = (element.attr("id"), element.attr_ignore_case("STATUS"));
        let step = if element.local == "Fault" {
            read_fault(&mut reader, &element).await.map(|f| {
                let _ = (f.describe(), f.base_code().len(), f.is_client());
            })
        } else if seen % 2 == 0 {
            reader.text(&element).await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(err) = step {
            let _ = err.to_string();
            return;
        }
    }
    if let Err(err) = reader.finish().await {
        let _ = err.to_string();
    }
}

impl Target for DuckCreek {
    fn name(&self) -> &'static str {
        "duckcreek"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        if let Some(err) = classify_fault_body("fuzz", status, input, is_login_fault) {
            let _ = err.to_string();
        }
        let _ = read_error("fuzz", status, input);
        if let Ok(text) = std::str::from_utf8(input) {
            let _ = fragment_elements(text);
        }
        self.rig.runtime.block_on(walk(input, chunk_size(input)));
        self.rig.read_all(input);
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let body = draw(element(3), runner);
        let envelope = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope \
             xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{body}</s:Body>\
             </s:Envelope>"
        );
        envelope.into_bytes()
    }
}

/// Attribute or text content: escaped hostile text mostly, sometimes raw.
fn content() -> BoxedStrategy<String> {
    (hostile_text(), any::<bool>())
        .prop_map(|(text, raw)| {
            if raw {
                text
            } else {
                idsync::connector::xml::escape(&text).into_owned()
            }
        })
        .boxed()
}

/// One element with attributes, text and children, `depth` levels at most.
fn element(depth: u32) -> BoxedStrategy<String> {
    let leaf = (
        prop::sample::select(ELEMENTS.to_vec()),
        prop::collection::vec((prop::sample::select(ATTRIBUTES.to_vec()), content()), 0..5),
    )
        .prop_map(|(name, attributes)| format!("<{name}{}/>", render_attributes(&attributes)))
        .boxed();
    leaf.prop_recursive(depth, 48, 6, |inner| {
        (
            prop::sample::select(ELEMENTS.to_vec()),
            prop::collection::vec((prop::sample::select(ATTRIBUTES.to_vec()), content()), 0..5),
            prop::collection::vec(prop_oneof![inner, content()], 0..6),
        )
            .prop_map(|(name, attributes, children)| {
                format!(
                    "<{name}{}>{}</{name}>",
                    render_attributes(&attributes),
                    children.concat()
                )
            })
    })
    .boxed()
}

/// ` a="v" b="w"`.
fn render_attributes(attributes: &[(&str, String)]) -> String {
    attributes
        .iter()
        .map(|(name, value)| format!(" {name}=\"{value}\""))
        .collect()
}
