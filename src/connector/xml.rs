//! XML for the SOAP building blocks: a streaming pull reader over a response body that
//! enforces the safety rules, value escaping for the bodies idsync writes, and a
//! well-formedness check for rendered request fragments.
//!
//! * **Streaming.** [`XmlReader`] walks a document element by element from any async
//!   buffered reader (an HTTP body as it arrives): only the current element's name and
//!   attributes are held, never a tree, so a 50,000-user list costs the memory of one user.
//! * **Refused:** a `DOCTYPE` (and with it every entity declaration: nothing is ever
//!   expanded), a reference to an entity other than the five predefined ones, elements nested
//!   deeper than the depth cap, mismatched or unclosed tags, a document that ends early, and
//!   an encoding other than UTF-8. The body reader caps the size.
//! * **Names** are matched by local name; the namespace an element is bound to is given
//!   alongside, so callers can check it where it matters (the SOAP envelope) and ignore
//!   prefixes everywhere (`soap:`, `soapenv:` and `s:` are all the same envelope).

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;
use tokio::io::AsyncBufRead;

/// How deep elements may nest in a response before it is refused.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Why a document was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML, or not the structure expected; the text says where.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed but refused for safety (a DOCTYPE, an entity, too deep).
    #[error("{0}")]
    Refused(String),
    /// The underlying reader failed (the body stream: too large, connection broken).
    #[error("reading the body failed: {0}")]
    Io(std::io::Error),
}

/// One element start as read: its local name, its namespace and its attributes (values
/// unescaped; namespace declarations left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The name without its prefix (`Envelope` for `soap:Envelope`).
    pub local: String,
    /// The namespace URI the element is bound to, if any.
    pub namespace: Option<String>,
    /// `(local name, value)` of each attribute, in document order.
    pub attributes: Vec<(String, String)>,
    /// Whether it was written `<x/>` (no children, no end tag to read).
    pub empty: bool,
}

impl Element {
    /// The value of the attribute with local name `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the attribute with local name `name` compared without letter case.
    pub fn attr_ignore_case(&self, name: &str) -> Option<&str> {
        self.attr(name).or_else(|| {
            self.attributes
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        })
    }
}

/// A streaming reader of one XML document. Walk it with [`next_child`](Self::next_child)
/// (descend), [`skip`](Self::skip) (ignore an element's content) and [`text`](Self::text)
/// (read an element's text), then call [`finish`](Self::finish) to make sure the document
/// is complete.
pub struct XmlReader<R> {
    reader: NsReader<R>,
    buf: Vec<u8>,
    /// Local names of the open elements, outermost first.
    open: Vec<String>,
    /// Whether the root element has started.
    rooted: bool,
    max_depth: usize,
}

impl<R: AsyncBufRead + Unpin> XmlReader<R> {
    /// A reader of the document `source` yields, refusing elements nested deeper than
    /// `max_depth`.
    pub fn new(source: R, max_depth: usize) -> Self {
        let mut reader = NsReader::from_reader(source);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = false;
        config.expand_empty_elements = false;
        config.allow_unmatched_ends = false;
        Self {
            reader,
            buf: Vec::with_capacity(1024),
            open: Vec::new(),
            rooted: false,
            max_depth: max_depth.max(1),
        }
    }

    /// How many elements are open (0 before the root and after it has ended).
    pub fn depth(&self) -> usize {
        self.open.len()
    }

    /// The next element at the current level: the root at the start, else the next child of
    /// the element last entered. `None` at the end of the current element (its end tag is
    /// consumed) or, at the top level, at the end of the document. A returned element that
    /// is not [`empty`](Element::empty) is entered: read its children with more calls, or
    /// leave it with [`skip`](Self::skip). Input that ends while elements are still open
    /// also answers `None` (at every level, again and again): only [`finish`](Self::finish)
    /// reports the truncation, so a reader must call it, and must not loop on `None`.
    pub async fn next_child(&mut self) -> Result<Option<Element>, XmlError> {
        loop {
            match self.next_event().await? {
                Step::Start(element) => return Ok(Some(element)),
                Step::End | Step::Eof => return Ok(None),
                Step::Text(_) => {}
            }
        }
    }

    /// Leaves `element` (just returned by [`next_child`](Self::next_child)) without reading
    /// the rest of its content. Nothing to do for an empty element.
    pub async fn skip(&mut self, element: &Element) -> Result<(), XmlError> {
        if element.empty {
            return Ok(());
        }
        let target = self.open.len().saturating_sub(1);
        while self.open.len() > target {
            if let Step::Eof = self.next_event().await? {
                return Err(self.truncated());
            }
        }
        Ok(())
    }

    /// The text inside `element` (just returned by [`next_child`](Self::next_child)), with
    /// the text of nested elements appended in document order, and leaves it. Empty for an
    /// empty element.
    pub async fn text(&mut self, element: &Element) -> Result<String, XmlError> {
        let mut text = String::new();
        if element.empty {
            return Ok(text);
        }
        let target = self.open.len().saturating_sub(1);
        while self.open.len() > target {
            match self.next_event().await? {
                Step::Text(part) => text.push_str(&part),
                Step::Eof => return Err(self.truncated()),
                Step::Start(_) | Step::End => {}
            }
        }
        Ok(text)
    }

    /// Reads on to the end of the document: every open element must be closed, and nothing
    /// but whitespace, comments and processing instructions may follow the root.
    pub async fn finish(&mut self) -> Result<(), XmlError> {
        loop {
            if let Step::Eof = self.next_event().await? {
                return if self.open.is_empty() {
                    Ok(())
                } else {
                    Err(self.truncated())
                };
            }
        }
    }

    /// The error for a document that ends with elements still open.
    fn truncated(&self) -> XmlError {
        XmlError::Malformed(format!(
            "the document ends early, inside <{}> (truncated?)",
            self.open.join("><")
        ))
    }

    /// The next event that matters, with the open-element stack kept and every rule applied.
    async fn next_event(&mut self) -> Result<Step, XmlError> {
        loop {
            self.buf.clear();
            let (resolved, event) = self
                .reader
                .read_resolved_event_into_async(&mut self.buf)
                .await
                .map_err(|err| map_error(err, &self.open))?;
            if self.open.is_empty() {
                match &event {
                    Event::Start(_) | Event::Empty(_) if self.rooted => {
                        return Err(XmlError::Malformed(
                            "the document has a second element after its root".to_string(),
                        ));
                    }
                    Event::Start(_) | Event::Empty(_) => self.rooted = true,
                    Event::Text(text) if !text.iter().all(u8::is_ascii_whitespace) => {
                        return Err(XmlError::Malformed(
                            "the document has text outside its root element".to_string(),
                        ));
                    }
                    Event::CData(_) | Event::GeneralRef(_) => {
                        return Err(XmlError::Malformed(
                            "the document has text outside its root element".to_string(),
                        ));
                    }
                    _ => {}
                }
            }
            match event {
                Event::Start(start) => {
                    let element = element(&resolved, &start, false)?;
                    if self.open.len() >= self.max_depth {
                        return Err(XmlError::Refused(format!(
                            "elements are nested deeper than {} levels (at <{}>)",
                            self.max_depth, element.local
                        )));
                    }
                    self.open.push(element.local.clone());
                    return Ok(Step::Start(element));
                }
                Event::Empty(start) => return Ok(Step::Start(element(&resolved, &start, true)?)),
                Event::End(_) => {
                    if self.open.pop().is_none() {
                        return Err(XmlError::Malformed(
                            "an end tag closes no element".to_string(),
                        ));
                    }
                    return Ok(Step::End);
                }
                Event::Text(text) => {
                    let text = text
                        .xml_content(XmlVersion::Implicit1_0)
                        .map_err(|err| XmlError::Malformed(format!("text is not UTF-8: {err}")))?;
                    return Ok(Step::Text(text.into_owned()));
                }
                Event::CData(data) => {
                    let text = data
                        .decode()
                        .map_err(|err| XmlError::Malformed(format!("CDATA is not UTF-8: {err}")))?;
                    return Ok(Step::Text(text.into_owned()));
                }
                Event::GeneralRef(reference) => {
                    if let Some(c) = reference
                        .resolve_char_ref()
                        .map_err(|err| XmlError::Malformed(err.to_string()))?
                    {
                        return Ok(Step::Text(c.to_string()));
                    }
                    let name = reference.decode().map_err(|err| {
                        XmlError::Malformed(format!("an entity name is not UTF-8: {err}"))
                    })?;
                    return match resolve_predefined_entity(&name) {
                        Some(text) => Ok(Step::Text(text.to_string())),
                        None => Err(XmlError::Refused(format!(
                            "the document refers to entity &{name}; which is not one of XML's \
                             predefined entities (entity declarations are refused)"
                        ))),
                    };
                }
                Event::DocType(_) => {
                    return Err(XmlError::Refused(
                        "the document has a DOCTYPE; DTDs and entity declarations are refused \
                         (no entity is ever expanded)"
                            .to_string(),
                    ))
                }
                Event::Decl(decl) => check_declaration(&decl)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Ok(Step::Eof),
            }
        }
    }
}

/// What [`XmlReader::next_event`] hands on.
enum Step {
    Start(Element),
    End,
    Text(String),
    Eof,
}

/// Accepts a declaration of UTF-8 (or none); anything else is refused.
fn check_declaration(decl: &quick_xml::events::BytesDecl<'_>) -> Result<(), XmlError> {
    let Some(encoding) = decl.encoding() else {
        return Ok(());
    };
    let encoding = encoding.map_err(|err| XmlError::Malformed(err.to_string()))?;
    let name = String::from_utf8_lossy(&encoding).to_ascii_lowercase();
    if name == "utf-8" || name == "utf8" {
        Ok(())
    } else {
        Err(XmlError::Refused(format!(
            "the document is declared in encoding {name}; only UTF-8 is read"
        )))
    }
}

/// An [`Element`] from a start tag.
fn element(
    resolved: &ResolveResult<'_>,
    start: &BytesStart<'_>,
    empty: bool,
) -> Result<Element, XmlError> {
    let local = utf8(start.local_name().as_ref(), "an element name")?;
    let namespace = match resolved {
        ResolveResult::Bound(namespace) => Some(utf8(namespace.as_ref(), "a namespace")?),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(prefix) => {
            return Err(XmlError::Malformed(format!(
                "element <{local}> uses the undeclared namespace prefix `{}`",
                String::from_utf8_lossy(prefix)
            )))
        }
    };
    let mut attributes = Vec::new();
    for attribute in start.attributes().with_checks(true) {
        let attribute = attribute
            .map_err(|err| XmlError::Malformed(format!("a bad attribute in <{local}>: {err}")))?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let key = utf8(attribute.key.local_name().as_ref(), "an attribute name")?;
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| {
                XmlError::Refused(format!(
                    "attribute {key} of <{local}> cannot be read: {err} (only XML's predefined \
                     entities and character references are accepted)"
                ))
            })?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        local,
        namespace,
        attributes,
        empty,
    })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, XmlError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| XmlError::Malformed(format!("{what} is not UTF-8")))
}

/// A quick-xml error, with the body stream's own error kept whole for classification.
fn map_error(err: quick_xml::Error, open: &[String]) -> XmlError {
    match err {
        quick_xml::Error::Io(io) => {
            let kind = io.kind();
            match std::sync::Arc::try_unwrap(io) {
                Ok(io) => XmlError::Io(io),
                Err(shared) => XmlError::Io(std::io::Error::new(kind, shared.to_string())),
            }
        }
        quick_xml::Error::Syntax(syntax)
            if !open.is_empty() && syntax != quick_xml::errors::SyntaxError::InvalidBangMarkup =>
        {
            // The other syntax errors are something left open at the end of the input: a
            // tag, a quote, a comment.
            XmlError::Malformed(format!(
                "the document ends early, inside <{}> ({syntax}; truncated?)",
                open.join("><")
            ))
        }
        other => {
            let place = match open.last() {
                Some(name) => format!(" (inside <{name}>)"),
                None => String::new(),
            };
            XmlError::Malformed(format!("not well-formed XML{place}: {other}"))
        }
    }
}

/// Characters XML 1.0 cannot carry at all, even escaped.
fn is_forbidden(c: char) -> bool {
    let code = u32::from(c);
    (code < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || code == 0xFFFE || code == 0xFFFF
}

/// True for an element or attribute name without a prefix: a letter or `_`, then letters,
/// digits, `.`, `-`, `_`.
pub fn is_local_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// The first character of `text` that XML 1.0 cannot carry, if any.
pub fn forbidden_char(text: &str) -> Option<char> {
    text.chars().find(|c| is_forbidden(*c))
}

/// Writes `text` escaped for an attribute value or element text: `&`, `<`, `>`, `"` and `'`
/// as entities, and tab, newline and carriage return as character references (so attribute
/// normalisation does not turn them into spaces). The caller checks
/// [`forbidden_char`] first; such characters are written as they are here.
pub fn write_escaped(out: &mut impl std::fmt::Write, text: &str) -> std::fmt::Result {
    for c in text.chars() {
        match c {
            '&' => out.write_str("&amp;")?,
            '<' => out.write_str("&lt;")?,
            '>' => out.write_str("&gt;")?,
            '"' => out.write_str("&quot;")?,
            '\'' => out.write_str("&apos;")?,
            '\t' => out.write_str("&#9;")?,
            '\n' => out.write_str("&#10;")?,
            '\r' => out.write_str("&#13;")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// `text` escaped by [`write_escaped`].
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'' | '\t' | '\n' | '\r'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    // Writing to a String cannot fail.
    let _ = write_escaped(&mut out, text);
    Cow::Owned(out)
}

/// The top-level elements of a rendered fragment (one or more elements, e.g. the inner
/// requests of a Duck Creek batch), after checking it is well-formed: tags balanced and
/// named alike, attributes quoted and unique, no DOCTYPE, only predefined entities, and no
/// text outside the elements. Errors say what is wrong and where.
pub fn fragment_elements(fragment: &str) -> Result<Vec<String>, XmlError> {
    let mut reader = quick_xml::Reader::from_str(fragment);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.allow_unmatched_ends = false;
    let mut open: Vec<String> = Vec::new();
    let mut top = Vec::new();
    loop {
        let event = reader.read_event().map_err(|err| {
            let place = match open.last() {
                Some(name) => format!(" inside <{name}>"),
                None => String::new(),
            };
            XmlError::Malformed(format!(
                "not well-formed XML{place} (at byte {}): {err}",
                reader.error_position()
            ))
        })?;
        let is_empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                let name = utf8(start.name().as_ref(), "an element name")?;
                for attribute in start.attributes().with_checks(true) {
                    let attribute = attribute.map_err(|err| {
                        XmlError::Malformed(format!("a bad attribute in <{name}>: {err}"))
                    })?;
                    attribute
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|err| {
                            XmlError::Malformed(format!(
                                "an attribute of <{name}> cannot be read: {err}"
                            ))
                        })?;
                }
                if open.is_empty() {
                    top.push(name.clone());
                }
                if !is_empty {
                    open.push(name);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(text) => {
                if open.is_empty() && !text.iter().all(u8::is_ascii_whitespace) {
                    let shown: String = String::from_utf8_lossy(&text)
                        .trim()
                        .chars()
                        .take(40)
                        .collect();
                    return Err(XmlError::Malformed(format!(
                        "text outside any element: `{shown}`"
                    )));
                }
            }
            Event::GeneralRef(reference) => {
                let is_known = reference.is_char_ref()
                    || reference
                        .decode()
                        .ok()
                        .is_some_and(|name| resolve_predefined_entity(&name).is_some());
                if !is_known {
                    return Err(XmlError::Malformed(format!(
                        "refers to the undefined entity &{};",
                        String::from_utf8_lossy(&reference)
                    )));
                }
                if open.is_empty() {
                    return Err(XmlError::Malformed(
                        "an entity reference outside any element".to_string(),
                    ));
                }
            }
            Event::DocType(_) => {
                return Err(XmlError::Refused("a DOCTYPE is not allowed".to_string()))
            }
            Event::Decl(_) => {
                return Err(XmlError::Malformed(
                    "an XML declaration is not allowed in a fragment".to_string(),
                ))
            }
            Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(name) = open.last() {
        return Err(XmlError::Malformed(format!("<{name}> is never closed")));
    }
    if top.is_empty() {
        return Err(XmlError::Malformed("holds no element".to_string()));
    }
    Ok(top)
}

/// A short excerpt of `text` for messages: collapsed whitespace, at most `max` characters.
pub fn excerpt(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > max {
        let mut cut: String = collapsed.chars().take(max).collect();
        let _ = write!(cut, "…");
        cut
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    async fn walk(document: &str) -> Result<Vec<String>, XmlError> {
        let mut reader = XmlReader::new(document.as_bytes(), 8);
        let mut seen = Vec::new();
        walk_children(&mut reader, &mut seen).await?;
        reader.finish().await?;
        Ok(seen)
    }

    async fn walk_children(
        reader: &mut XmlReader<&[u8]>,
        seen: &mut Vec<String>,
    ) -> Result<(), XmlError> {
        while let Some(element) = reader.next_child().await? {
            let attrs: Vec<String> = element
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            seen.push(format!("{}[{}]", element.local, attrs.join(",")));
            if !element.empty {
                Box::pin(walk_children(reader, seen)).await?;
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn walks_elements_by_local_name_with_unescaped_attributes() {
        let seen = walk(
            r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <User id="1" name="O&apos;Brien &amp; Co" note="a&#10;b"/>
              <!-- comment --><Roles><Role name="R&lt;1&gt;"/></Roles>
            </s:Body></s:Envelope>"#,
        )
        .await
        .unwrap();
        assert_eq!(
            seen,
            [
                "Envelope[]",
                "Body[]",
                "User[id=1,name=O'Brien & Co,note=a\nb]",
                "Roles[]",
                "Role[name=R<1>]"
            ]
        );
    }

    #[tokio::test]
    async fn namespaces_are_resolved_whatever_the_prefix() {
        for prefix in ["soap", "soapenv", "s"] {
            let doc = format!(
                r#"<{prefix}:Envelope xmlns:{prefix}="urn:x"><{prefix}:Body/></{prefix}:Envelope>"#
            );
            let mut reader = XmlReader::new(doc.as_bytes(), 8);
            let root = reader.next_child().await.unwrap().unwrap();
            assert_eq!(root.local, "Envelope");
            assert_eq!(root.namespace.as_deref(), Some("urn:x"));
            let body = reader.next_child().await.unwrap().unwrap();
            assert_eq!((body.local.as_str(), body.empty), ("Body", true));
            assert!(reader.next_child().await.unwrap().is_none());
            reader.finish().await.unwrap();
        }
    }

    #[tokio::test]
    async fn skip_and_text_leave_the_element() {
        let doc = "<a><b><c>one</c><d/>two</b><e>x &amp; <f>y</f></e><g/></a>";
        let mut reader = XmlReader::new(doc.as_bytes(), 8);
        reader.next_child().await.unwrap().unwrap();
        let b = reader.next_child().await.unwrap().unwrap();
        reader.skip(&b).await.unwrap();
        let e = reader.next_child().await.unwrap().unwrap();
        assert_eq!(reader.text(&e).await.unwrap(), "x & y");
        let g = reader.next_child().await.unwrap().unwrap();
        assert_eq!(g.local, "g");
        assert!(reader.next_child().await.unwrap().is_none());
        assert_eq!(reader.depth(), 0);
        reader.finish().await.unwrap();
    }

    #[tokio::test]
    async fn a_doctype_is_refused_before_any_entity_is_read() {
        let bomb = r#"<?xml version="1.0"?>
            <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
            <lolz>&lol2;</lolz>"#;
        let err = walk(bomb).await.unwrap_err();
        assert!(matches!(err, XmlError::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("DOCTYPE"), "{err}");
    }

    #[tokio::test]
    async fn undeclared_entities_are_refused_in_text_and_attributes() {
        let err = walk("<a>&xxe;</a>").await.unwrap_err();
        assert!(err.to_string().contains("&xxe;"), "{err}");
        let err = walk(r#"<a v="&xxe;"/>"#).await.unwrap_err();
        assert!(matches!(err, XmlError::Refused(_)), "{err:?}");
    }

    #[tokio::test]
    async fn malformed_and_truncated_documents_are_errors() {
        for (doc, wanted) in [
            ("<a><b></a>", "not well-formed"),
            ("<a><b>", "ends early, inside <a><b>"),
            ("<a x='1' x='2'/>", "bad attribute"),
            ("<a/><b/>", "second element after its root"),
            ("<a/>junk", "text outside its root"),
            ("junk<a/>", "text outside its root"),
            ("<p:a/>", "undeclared namespace prefix"),
            (
                r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#,
                "only UTF-8",
            ),
        ] {
            let err = walk(doc).await.unwrap_err();
            assert!(err.to_string().contains(wanted), "{doc}: {err}");
        }
    }

    #[tokio::test]
    async fn depth_is_capped() {
        let deep = format!("{}{}", "<a>".repeat(9), "</a>".repeat(9));
        let err = walk(&deep).await.unwrap_err();
        assert!(err.to_string().contains("deeper than 8"), "{err}");
        let ok = format!("{}{}", "<a>".repeat(8), "</a>".repeat(8));
        walk(&ok).await.unwrap();
    }

    #[test]
    fn fragments_are_checked_for_well_formedness() {
        assert_eq!(
            fragment_elements(r#"<A.bRq x="1"/> <C.dRq><E/></C.dRq>"#).unwrap(),
            ["A.bRq", "C.dRq"]
        );
        // Saviynt's published enable template closes with the wrong name.
        let err = fragment_elements(
            r#"<Security.unlockUserAccountRq userName="x"></Security.lockUserAccountRq>"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not well-formed"), "{err}");
        for (bad, wanted) in [
            ("<a>", "never closed"),
            ("", "holds no element"),
            ("text <a/>", "text outside"),
            ("<a v=1/>", "bad attribute"),
            ("<a>&nope;</a>", "undefined entity"),
            ("<!DOCTYPE a><a/>", "DOCTYPE"),
        ] {
            let err = fragment_elements(bad).unwrap_err();
            assert!(err.to_string().contains(wanted), "{bad}: {err}");
        }
    }

    #[test]
    fn local_names_have_no_prefix_and_start_with_a_letter() {
        for good in [
            "OnlineData.listEntityUsersRq",
            "processRequestsAsDOM",
            "_x-1",
            "Ünïcode",
        ] {
            assert!(is_local_name(good), "{good}");
        }
        for bad in ["", "1a", "a:b", "a\"b", "a b", "<a>", "-a", ".a"] {
            assert!(!is_local_name(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn escaped_text_round_trips_through_an_attribute(value in "\\PC*") {
            prop_assume!(forbidden_char(&value).is_none());
            let doc = format!(r#"<a v="{}" w='{}'/>"#, escape(&value), escape(&value));
            let element = block_on(async {
                let mut reader = XmlReader::new(doc.as_bytes(), 4);
                reader.next_child().await
            }).unwrap().unwrap();
            prop_assert_eq!(element.attr("v"), Some(value.as_str()));
            prop_assert_eq!(element.attr("w"), Some(value.as_str()));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = block_on(async {
                let mut reader = XmlReader::new(bytes.as_slice(), 4);
                while let Some(element) = reader.next_child().await? {
                    reader.skip(&element).await?;
                }
                reader.finish().await
            });
        }
    }
}
