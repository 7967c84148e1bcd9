//! The simulator over real HTTP on 127.0.0.1:0, driven with reqwest; answers are read back
//! with quick-xml.

mod control;
mod faults;
mod protocol;
mod requests;

use std::collections::BTreeMap;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::{NsReader, XmlVersion};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::*;
use crate::clock::until_waiting;
use crate::{FaultRule, SimClock, SimControl, SimStats};

/// 60 users, 6 of them locked; no rate limit.
fn config() -> DuckCreekSimConfig {
    DuckCreekSimConfig {
        seed: DuckCreekSeed {
            users: 60,
            locked_users: 6,
            ..DuckCreekSeed::default()
        },
        ..DuckCreekSimConfig::default()
    }
}

async fn start(config: DuckCreekSimConfig) -> DuckCreekServer {
    DuckCreekSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// An element of an answer: local name, attributes by local name, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .unwrap_or_else(|| panic!("<{}> has no @{name}: {self:?}", self.name))
    }

    fn child(&self, name: &str) -> &Node {
        self.find(name)
            .unwrap_or_else(|| panic!("<{}> has no <{name}>", self.name))
    }

    fn find(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// `Success`, or the failure's `(code, text)`.
    fn outcome(&self) -> Result<(), (String, String)> {
        match self.attr("status") {
            "Success" => Ok(()),
            "Failure" => {
                let error = self.child("Errors").child("Error");
                Err((error.attr("code").to_owned(), error.attr("text").to_owned()))
            }
            other => panic!("status {other}"),
        }
    }

    fn failure_code(&self) -> String {
        self.outcome().expect_err("a failure").0
    }
}

fn element(start: &BytesStart<'_>) -> Result<Node, String> {
    let name =
        String::from_utf8(start.local_name().into_inner().to_vec()).map_err(|e| e.to_string())?;
    let mut attrs = BTreeMap::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let key = String::from_utf8(attr.key.local_name().into_inner().to_vec())
            .map_err(|e| e.to_string())?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?;
        attrs.insert(key, value.into_owned());
    }
    Ok(Node {
        name,
        attrs,
        ..Node::default()
    })
}

/// Reads a document the way a careful client does: well-formed or an error, DOCTYPEs
/// refused.
fn parse_xml(text: &str) -> Result<Node, String> {
    let mut reader = NsReader::from_str(text);
    let mut stack = vec![Node::default()];
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => {
                let node = element(&start)?;
                stack.last_mut().unwrap().children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().unwrap();
                stack.last_mut().ok_or("unmatched end")?.children.push(node);
            }
            Event::Text(text) => {
                let text = text.xml10_content().map_err(|e| e.to_string())?;
                stack.last_mut().unwrap().text.push_str(&text);
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(|e| e.to_string())?;
                        resolve_predefined_entity(&name)
                            .ok_or(format!("undefined entity {name}"))?
                            .to_owned()
                    }
                };
                stack.last_mut().unwrap().text.push_str(&resolved);
            }
            Event::DocType(_) => return Err("DOCTYPE refused".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("unclosed element".into());
    }
    let mut document = stack.pop().unwrap();
    if document.children.len() != 1 {
        return Err(format!("{} root elements", document.children.len()));
    }
    Ok(document.children.pop().unwrap())
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn envelope(&self) -> Node {
        let envelope = parse_xml(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body));
        assert_eq!(envelope.name, "Envelope");
        envelope
    }

    /// The `…Rs` elements of a 200 answer.
    fn responses(&self) -> Vec<Node> {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.content_type, "text/xml; charset=utf-8");
        self.envelope()
            .child("Body")
            .child("processRequestsAsDOMResponse")
            .child("result")
            .child("server")
            .child("responses")
            .children
            .clone()
    }

    /// The `faultcode` and `faultstring` of a fault.
    fn fault(&self) -> (String, String) {
        assert_eq!(self.content_type, "text/xml; charset=utf-8");
        let fault = self.envelope().child("Body").child("Fault").clone();
        (
            fault.child("faultcode").text.clone(),
            fault.child("faultstring").text.clone(),
        )
    }
}

/// The inner request for a login with these credentials, escaped.
fn login(username: &str, password: &str) -> String {
    format!(
        "<Session.loginRq userName=\"{}\" password=\"{}\"/>",
        escape(username),
        escape(password)
    )
}

/// A request envelope under `prefix` holding `requests`.
fn envelope(prefix: &str, requests: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{prefix}:Envelope xmlns:{prefix}=\
         \"http://schemas.xmlsoap.org/soap/envelope/\">\n  <{prefix}:Body>\n    <server><requests>\
         {requests}</requests></server>\n  </{prefix}:Body>\n</{prefix}:Envelope>\n"
    )
}

struct Client {
    http: reqwest::Client,
    url: String,
    origin: String,
    username: String,
    password: String,
}

impl Client {
    fn new(server: &DuckCreekServer) -> Self {
        let control = server.control();
        Self {
            http: reqwest::Client::new(),
            url: server.base_url(),
            origin: server.origin(),
            username: control.username(),
            password: control.password().expose_secret().to_owned(),
        }
    }

    fn login(&self) -> String {
        login(&self.username, &self.password)
    }

    /// Posts `body` with `headers` (none: `text/xml; charset=utf-8` and `SOAPAction: ""`).
    async fn post_with(&self, body: String, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.http.post(&self.url).body(body);
        if headers.is_empty() {
            request = request
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", "\"\"");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn post(&self, body: String) -> Answer {
        self.post_with(body, &[]).await
    }

    /// Logs in, sends `requests`, closes.
    async fn call(&self, requests: &str) -> Answer {
        let inner = format!("{}{requests}<Session.closeRq/>", self.login());
        self.post(envelope("soapenv", &inner)).await
    }

    /// The `…Rs` of `requests`, between the login and the close (both checked).
    async fn batch(&self, requests: &str) -> Vec<Node> {
        let mut responses = self.call(requests).await.responses();
        let close = responses.pop().unwrap();
        assert_eq!(
            (close.name.as_str(), close.outcome()),
            ("Session.closeRs", Ok(()))
        );
        let login = responses.remove(0);
        assert_eq!(
            (login.name.as_str(), login.outcome()),
            ("Session.loginRs", Ok(()))
        );
        responses
    }

    /// The one `…Rs` of a single request.
    async fn one(&self, request: &str) -> Node {
        let mut responses = self.batch(request).await;
        assert_eq!(responses.len(), 1);
        responses.pop().unwrap()
    }

    /// `OnlineData.listEntityUsersRs/Users` for entity `entity`.
    async fn users(&self, entity: u64) -> Vec<Node> {
        let rs = self
            .one(&format!(
                "<OnlineData.listEntityUsersRq entityID=\"{entity}\"/>"
            ))
            .await;
        assert_eq!(rs.outcome(), Ok(()));
        rs.child("Users").children.clone()
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.origin));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        body,
    }
}

/// A listed user as the control handle shows users.
fn listed(user: &Node) -> DcUser {
    let names = |container: &str, item: &str, attr: &str| -> Vec<String> {
        user.find(container)
            .map(|c| c.all(item).map(|n| n.attr(attr).to_owned()).collect())
            .unwrap_or_default()
    };
    DcUser {
        id: user.attr("id").parse().unwrap(),
        name: user.attr("name").to_owned(),
        email: user.attr("email").to_owned(),
        full_name: user.attr("fullName").to_owned(),
        status: match user.attr("status") {
            "Active" => DcUserStatus::Active,
            "Locked" => DcUserStatus::Locked,
            other => panic!("status {other}"),
        },
        roles: names("Roles", "Role", "name"),
        entities: names(
            "UserEntityMemberships",
            "UserEntityMembership",
            "entityName",
        ),
    }
}
