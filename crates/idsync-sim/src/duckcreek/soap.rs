//! The SOAP 1.1 layer: reading a request envelope into its batch of inner requests, and
//! writing response and fault envelopes with every value escaped.
//!
//! Requests are read with quick-xml's namespace-aware pull parser, matching elements by local
//! name (and the envelope by its namespace), so `soap:`, `soapenv:`, `s:` or a default
//! namespace all work. Anything that is not well-formed — unclosed or mismatched tags, bad
//! attribute syntax, an undefined entity, text outside the root, a DOCTYPE (refused outright:
//! no entity declarations, no expansion) — is a [`ParseError::Malformed`] whose message
//! never quotes the input, so a password in the body cannot leak into a fault.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::{NsReader, XmlVersion};

/// The SOAP 1.1 envelope namespace.
pub(crate) const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The namespace of the `processRequestsAsDOMResponse` wrapper (ASMX's default).
pub(crate) const SERVICE_NS: &str = "http://tempuri.org/";

/// The XML declaration every answer starts with.
pub(crate) const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

/// One request of a batch: its element's local name and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InnerRequest {
    /// The local name, e.g. `Security.lockUserAccountRq`.
    pub(crate) name: String,
    /// Attributes by local name, values unescaped (namespace declarations left out).
    attrs: Vec<(String, String)>,
}

impl InnerRequest {
    /// The value of attribute `name` (exact: XML names keep their case).
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The `server/requests` document of a request envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) requests: Vec<InnerRequest>,
    /// Whether `server` came inside `processRequestsAsDOM`.
    pub(crate) wrapped: bool,
}

/// Why a request envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Not well-formed XML; the reason names no input.
    Malformed(String),
    /// The root is an `Envelope` in another namespace (SOAP 1.2, or none).
    VersionMismatch,
    /// Well-formed, but not a SOAP envelope holding a `server/requests` document.
    NotBatch(&'static str),
}

/// Where an element sits in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Envelope,
    Body,
    /// `processRequestsAsDOM`, which may wrap `server`.
    Wrapper,
    Server,
    Requests,
    /// Anything else (a request's children, a Header's content, …): only checked for
    /// well-formedness.
    Other,
}

/// Reads a request envelope.
pub(crate) fn parse(body: &[u8]) -> Result<Batch, ParseError> {
    let mut reader = NsReader::from_reader(body);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.allow_unmatched_ends = false;
    let mut stack: Vec<Place> = Vec::new();
    let mut root_done = false;
    let mut saw_body = false;
    let mut saw_requests = false;
    let mut batch = Batch::default();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (Ns::of(&ns), event),
            Err(error) => return Err(malformed(describe(&error), reader.error_position())),
        };
        let at = reader.buffer_position();
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let empty = matches!(event, Event::Empty(_));
                if ns == Ns::Undeclared {
                    return Err(malformed("an undeclared namespace prefix", at));
                }
                check_attributes(start, at)?;
                let local = local_name(start, at)?;
                let place = match stack.last().copied() {
                    None if root_done => return Err(malformed("more than one root element", at)),
                    None => {
                        if local != "Envelope" {
                            return Err(ParseError::NotBatch(
                                "The request is not a SOAP envelope.",
                            ));
                        }
                        if ns != Ns::Soap11 {
                            return Err(ParseError::VersionMismatch);
                        }
                        Place::Envelope
                    }
                    Some(Place::Envelope) if local == "Body" && ns == Ns::Soap11 && !saw_body => {
                        saw_body = true;
                        Place::Body
                    }
                    Some(Place::Body) if local == "processRequestsAsDOM" => {
                        batch.wrapped = true;
                        Place::Wrapper
                    }
                    Some(Place::Body | Place::Wrapper) if local == "server" => Place::Server,
                    Some(Place::Server) if local == "requests" => {
                        saw_requests = true;
                        Place::Requests
                    }
                    Some(Place::Requests) => {
                        batch.requests.push(inner_request(start, local, at)?);
                        Place::Other
                    }
                    Some(_) => Place::Other,
                };
                if empty {
                    if stack.is_empty() {
                        root_done = true;
                    }
                } else {
                    stack.push(place);
                }
            }
            Event::End(_) => {
                stack.pop();
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::DocType(_) => {
                return Err(malformed(
                    "a DOCTYPE (entity declarations) is not allowed",
                    at,
                ))
            }
            Event::Text(text) if stack.is_empty() => {
                if !text.iter().all(u8::is_ascii_whitespace) {
                    return Err(malformed("text outside the root element", at));
                }
            }
            Event::GeneralRef(reference) => {
                let known = match reference.resolve_char_ref() {
                    Ok(Some(c)) => is_xml_char(c),
                    Ok(None) => matches!(&*reference, b"lt" | b"gt" | b"amp" | b"apos" | b"quot"),
                    Err(_) => false,
                };
                if !known || stack.is_empty() {
                    return Err(malformed("an undefined entity reference", at));
                }
            }
            Event::Eof => break,
            Event::Text(_)
            | Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed(
            "the document ends inside an unclosed element",
            reader.buffer_position(),
        ));
    }
    if !root_done {
        return Err(malformed("there is no root element", 0));
    }
    if !saw_body {
        return Err(ParseError::NotBatch("The SOAP envelope has no Body."));
    }
    if !saw_requests {
        return Err(ParseError::NotBatch(
            "The SOAP Body holds no server/requests document.",
        ));
    }
    Ok(batch)
}

fn malformed(reason: &str, at: u64) -> ParseError {
    ParseError::Malformed(format!(
        "The request XML is malformed: {reason} (near byte {at})."
    ))
}

/// A reason for a parser error that quotes nothing from the input (error texts can carry
/// names and entity names, and an attribute value may be a password).
fn describe(error: &quick_xml::Error) -> &'static str {
    use quick_xml::errors::IllFormedError;
    use quick_xml::Error;
    match error {
        Error::Syntax(_) => "a tag, comment or declaration is not closed or not valid",
        Error::IllFormed(IllFormedError::MismatchedEndTag { .. }) => {
            "a closing tag does not match its opening tag"
        }
        Error::IllFormed(IllFormedError::UnmatchedEndTag(_)) => "a closing tag has no opening tag",
        Error::IllFormed(_) => "the document is not well-formed",
        Error::InvalidAttr(_) => "bad attribute syntax",
        Error::Encoding(_) => "the text is not valid UTF-8",
        Error::Escape(_) => "a bad character or entity reference",
        Error::Namespace(_) => "a bad namespace declaration",
        Error::Io(_) => "the body could not be read",
    }
}

/// The namespace an element is in, as far as the envelope cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    /// SOAP 1.1's envelope namespace.
    Soap11,
    /// Another namespace, or none.
    Other,
    /// A prefix that was never declared (not namespace-well-formed).
    Undeclared,
}

impl Ns {
    fn of(ns: &ResolveResult<'_>) -> Self {
        match ns {
            ResolveResult::Bound(Namespace(uri)) if *uri == SOAP11_NS.as_bytes() => Ns::Soap11,
            ResolveResult::Bound(_) | ResolveResult::Unbound => Ns::Other,
            ResolveResult::Unknown(_) => Ns::Undeclared,
        }
    }
}

fn local_name<'a>(start: &'a BytesStart<'_>, at: u64) -> Result<&'a str, ParseError> {
    let local = std::str::from_utf8(start.local_name().into_inner())
        .map_err(|_| malformed("an element name is not valid UTF-8", at))?;
    if is_ncname(local) {
        Ok(local)
    } else {
        Err(malformed("an element name is not a valid XML name", at))
    }
}

/// True for a name without a prefix as XML defines it (an `NCName` of Namespaces in XML 1.0,
/// built from the `NameStartChar` and `NameChar` productions of XML 1.0, fifth edition):
/// what a server accepts as an element or prefix name. This is the simulator's own reading
/// of the specification, kept apart from idsync's client on purpose.
pub(crate) fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

/// XML 1.0 `NameStartChar`, without `:` (a prefix separator in a namespaced document).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 `NameChar`, without `:`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Checks every attribute of an element is well-formed, with a value that unescapes.
fn check_attributes(start: &BytesStart<'_>, at: u64) -> Result<(), ParseError> {
    for attr in start.attributes() {
        let attr = attr.map_err(|_| malformed("bad attribute syntax", at))?;
        attr.normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| malformed("a bad character or entity reference in an attribute", at))?;
    }
    Ok(())
}

fn inner_request(start: &BytesStart<'_>, local: &str, at: u64) -> Result<InnerRequest, ParseError> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| malformed("bad attribute syntax", at))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let name = std::str::from_utf8(key.local_name().into_inner())
            .map_err(|_| malformed("an attribute name is not valid UTF-8", at))?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| malformed("a bad character or entity reference in an attribute", at))?;
        attrs.push((name.to_owned(), value.into_owned()));
    }
    Ok(InnerRequest {
        name: local.to_owned(),
        attrs,
    })
}

/// An XML document being written: raw markup plus escaped attribute values and text.
#[derive(Debug, Default)]
pub(crate) struct Xml {
    buf: String,
}

impl Xml {
    /// An empty document with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: String::with_capacity(capacity),
        }
    }

    /// Appends markup as is.
    pub(crate) fn raw(&mut self, markup: &str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    /// Opens a start tag: `<name`.
    pub(crate) fn open(&mut self, name: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self
    }

    /// Appends ` key="value"`, the value escaped.
    pub(crate) fn attr(&mut self, key: &str, value: &str) -> &mut Self {
        self.buf.push(' ');
        self.buf.push_str(key);
        self.buf.push_str("=\"");
        escape_into(&mut self.buf, value);
        self.buf.push('"');
        self
    }

    /// Appends ` key="N"`.
    pub(crate) fn attr_id(&mut self, key: &str, value: u64) -> &mut Self {
        use std::fmt::Write;
        let _ = write!(self.buf, " {key}=\"{value}\"");
        self
    }

    /// Ends a start tag: `>`.
    pub(crate) fn end(&mut self) -> &mut Self {
        self.buf.push('>');
        self
    }

    /// Ends an empty element: `/>`.
    pub(crate) fn end_empty(&mut self) -> &mut Self {
        self.buf.push_str("/>");
        self
    }

    /// Appends a closing tag: `</name>`.
    pub(crate) fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// Appends escaped character data.
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        escape_into(&mut self.buf, text);
        self
    }

    /// The document.
    pub(crate) fn finish(self) -> String {
        self.buf
    }
}

/// Escapes `text` for an attribute value or character data: the five markup characters,
/// tab, line feed and carriage return as references (so they survive attribute
/// normalization), and characters XML 1.0 cannot carry as U+FFFD.
fn escape_into(buf: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' => buf.push_str("&quot;"),
            '\'' => buf.push_str("&apos;"),
            '\t' => buf.push_str("&#9;"),
            '\n' => buf.push_str("&#10;"),
            '\r' => buf.push_str("&#13;"),
            c if is_xml_char(c) => buf.push(c),
            _ => buf.push('\u{FFFD}'),
        }
    }
}

/// True for a character XML 1.0 allows in a document.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Writes `<?xml …?><P:Envelope xmlns:P="…"><P:Body>`.
pub(crate) fn open_envelope(xml: &mut Xml, prefix: &str) {
    xml.raw(XML_DECL)
        .open(prefix)
        .raw(":Envelope")
        .attr(&format!("xmlns:{prefix}"), SOAP11_NS)
        .end()
        .open(prefix)
        .raw(":Body>");
}

/// Writes `</P:Body></P:Envelope>`.
pub(crate) fn close_envelope(xml: &mut Xml, prefix: &str) {
    xml.raw("</")
        .raw(prefix)
        .raw(":Body></")
        .raw(prefix)
        .raw(":Envelope>");
}

/// Which side a fault blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultCode {
    /// The request is wrong (credentials, XML): permanent.
    Client,
    /// The server failed: transient.
    Server,
    /// The envelope is not SOAP 1.1.
    VersionMismatch,
}

impl FaultCode {
    fn as_str(self) -> &'static str {
        match self {
            FaultCode::Client => "Client",
            FaultCode::Server => "Server",
            FaultCode::VersionMismatch => "VersionMismatch",
        }
    }
}

/// A SOAP 1.1 fault envelope:
/// `<P:Fault><faultcode>P:Client</faultcode><faultstring>…</faultstring>
/// <detail><Errors><Error code="…" text="…"/></Errors></detail></P:Fault>`.
pub(crate) fn fault(prefix: &str, code: FaultCode, error: &str, message: &str) -> String {
    let mut xml = Xml::with_capacity(512);
    open_envelope(&mut xml, prefix);
    xml.open(prefix)
        .raw(":Fault><faultcode>")
        .raw(prefix)
        .raw(":")
        .raw(code.as_str())
        .raw("</faultcode><faultstring>")
        .text(message)
        .raw("</faultstring><detail><Errors>")
        .open("Error")
        .attr("code", error)
        .attr("text", message)
        .end_empty()
        .raw("</Errors></detail></")
        .raw(prefix)
        .raw(":Fault>");
    close_envelope(&mut xml, prefix);
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";

    fn envelope(prefix: &str, body: &str) -> String {
        format!(
            "<{prefix}:Envelope xmlns:{prefix}=\"{ENV}\"><{prefix}:Header/>\
             <{prefix}:Body>{body}</{prefix}:Body></{prefix}:Envelope>"
        )
    }

    fn malformed_reason(xml: &str) -> String {
        match parse(xml.as_bytes()) {
            Err(ParseError::Malformed(reason)) => reason,
            other => panic!("{xml}: {other:?}"),
        }
    }

    #[test]
    fn reads_requests_under_any_prefix_and_either_wrapper() {
        let requests = "<server><requests>\
            <Session.loginRq userName=\"a&amp;b\" password=\"p&lt;&#34;'\"/>\
            <x:OnlineData.listEntityUsersRq xmlns:x=\"urn:x\" x:entityID=\"1\"><child/></x:OnlineData.listEntityUsersRq>\
            </requests></server>";
        for xml in [
            envelope("soap", requests),
            envelope("s", &format!("<processRequestsAsDOM xmlns=\"http://tempuri.org/\">{requests}</processRequestsAsDOM>")),
            format!("<?xml version=\"1.0\"?>\n<Envelope xmlns=\"{ENV}\"><Body>{requests}</Body></Envelope>\n"),
        ] {
            let batch = parse(xml.as_bytes()).unwrap();
            let names: Vec<&str> = batch.requests.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["Session.loginRq", "OnlineData.listEntityUsersRq"], "{xml}");
            let login = &batch.requests[0];
            assert_eq!(login.attr("userName"), Some("a&b"));
            assert_eq!(login.attr("password"), Some("p<\"'"));
            assert_eq!(batch.requests[1].attr("entityID"), Some("1"));
            assert_eq!(batch.requests[1].attr("xmlns:x"), None);
        }
        let empty = parse(envelope("soap", "<server><requests/></server>").as_bytes()).unwrap();
        assert!(empty.requests.is_empty());
    }

    #[test]
    fn refuses_what_is_not_well_formed_without_quoting_it() {
        let secret = "hunter2";
        for (xml, expect) in [
            (envelope("soap", &format!("<server><requests><Session.loginRq password=\"{secret}\"></requests></server>")), "closing tag"),
            (envelope("soap", &format!("<server><requests><Session.loginRq password={secret}/></requests></server>")), "attribute"),
            (envelope("soap", &format!("<server><requests><Session.loginRq password=\"{secret}&{secret};\"/></requests></server>")), "entity reference"),
            (envelope("soap", "<server><requests>&lol;</requests></server>"), "entity reference"),
            (envelope("soap", "<server><requests>&#0;</requests></server>"), "entity reference"),
            (envelope("soap", "<server><requests><a b=\"1\" b=\"2\"/></requests></server>"), "attribute"),
            (format!("<!DOCTYPE x [<!ENTITY a \"{secret}\">]>{}", envelope("soap", "")), "DOCTYPE"),
            (envelope("soap", "<server><requests>").replace("</soap:Envelope>", ""), "closing tag"),
            (format!("{}<more/>", envelope("soap", "<server><requests/></server>")), "more than one root"),
            (format!("{}junk", envelope("soap", "<server><requests/></server>")), "text outside"),
            (format!("<soap:Envelope xmlns:soap=\"{ENV}\"><soap:Body><server><requests>"), "unclosed"),
            (envelope("soap", "<u:server><requests/></u:server>"), "undeclared namespace prefix"),
            ("".to_owned(), "no root"),
        ] {
            let reason = malformed_reason(&xml);
            assert!(reason.starts_with("The request XML is malformed:"), "{reason}");
            assert!(reason.contains(expect), "{xml}: {reason}");
            assert!(!reason.contains(secret), "{reason}");
        }
    }

    #[test]
    fn tells_other_envelopes_and_documents_apart() {
        let soap12 = "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\">\
            <e:Body><server><requests/></server></e:Body></e:Envelope>";
        assert_eq!(parse(soap12.as_bytes()), Err(ParseError::VersionMismatch));
        assert_eq!(
            parse(b"<Envelope><Body/></Envelope>"),
            Err(ParseError::VersionMismatch)
        );
        assert!(matches!(parse(b"<server/>"), Err(ParseError::NotBatch(_))));
        assert!(matches!(
            parse(envelope("soap", "").replace("<soap:Body></soap:Body>", "").as_bytes()),
            Err(ParseError::NotBatch(m)) if m.contains("no Body")
        ));
        assert!(matches!(
            parse(envelope("soap", "<server/>").as_bytes()),
            Err(ParseError::NotBatch(m)) if m.contains("server/requests")
        ));
    }

    #[test]
    fn escapes_every_special_character() {
        let mut xml = Xml::default();
        xml.open("a")
            .attr("v", "R&D <Labs> \"q\" 'a'\t\n\r\u{1}")
            .end()
            .text("x<y & z")
            .close("a");
        let text = xml.finish();
        assert_eq!(
            text,
            "<a v=\"R&amp;D &lt;Labs&gt; &quot;q&quot; &apos;a&apos;&#9;&#10;&#13;\u{FFFD}\">x&lt;y &amp; z</a>"
        );
        let mut reader = NsReader::from_str(&text);
        let Ok((_, Event::Start(start))) = reader.read_resolved_event() else {
            panic!("no start");
        };
        let value = start.attributes().next().unwrap().unwrap();
        assert_eq!(
            value.normalized_value(XmlVersion::Implicit1_0).unwrap(),
            "R&D <Labs> \"q\" 'a'\t\n\r\u{FFFD}"
        );
    }

    #[test]
    fn names_follow_the_xml_productions() {
        for name in [
            "OnlineData.listEntityUsersRq",
            "soap",
            "SOAP-ENV",
            "_x",
            "Agency",
            "\u{c9}tat",
            "r\u{e9}sum\u{e9}",
            "x\u{b7}y",
            "\u{4e0a}\u{6d77}",
        ] {
            assert!(is_ncname(name), "{name}");
        }
        for name in [
            "",
            "1x",
            "-x",
            ".x",
            "a:b",
            "a b",
            "a/b",
            "a<b",
            "\u{b7}x",
            "x\u{d7}",
            "a\u{2028}",
        ] {
            assert!(!is_ncname(name), "{name:?}");
        }
    }

    #[test]
    fn faults_carry_the_prefix_and_an_escaped_message() {
        let text = fault("SOAP-ENV", FaultCode::Client, "LoginFailed", "bad <x> & y");
        assert!(text.starts_with(XML_DECL));
        assert!(text.contains(
            "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\">"
        ));
        assert!(text.contains("<faultcode>SOAP-ENV:Client</faultcode>"));
        assert!(text.contains("<faultstring>bad &lt;x&gt; &amp; y</faultstring>"));
        assert!(text.contains("<Error code=\"LoginFailed\" text=\"bad &lt;x&gt; &amp; y\"/>"));
        assert!(parse(text.as_bytes()).is_err_and(|e| matches!(e, ParseError::NotBatch(_))));
    }
}
