//! Response faults: answers that come back HTTP 200 but broken — cut short, carrying an
//! entity bomb, not well-formed, an HTML page — or with one request answered `Failure`.
//! They test the adapter's parser and safety rules, which an HTTP status cannot.

use serde::{Deserialize, Serialize};

use super::batch::{CLOSE, LOGIN};

/// How a response is broken (see [`ResponseFaultRule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFault {
    /// The first half of the normal body, sent as a complete HTTP 200 (the XML just stops).
    Truncate,
    /// A "billion laughs" document: a DOCTYPE declaring nine levels of entities, each ten of
    /// the one below, referenced inside the `Users` list. Expanded, it is gigabytes.
    EntityBomb,
    /// The normal body with a mismatched closing tag in the middle of the `Users` list.
    Malformed,
    /// A `text/html` error page, as a proxy or a login portal would answer.
    Html,
    /// The named request's `…Rs` answered `status="Failure"` with this error, instead of
    /// running.
    Failure {
        /// The `Error/@code`.
        code: String,
        /// The `Error/@text`.
        text: String,
    },
}

/// A response fault installed with
/// [`DuckCreekControl::break_response`](super::DuckCreekControl::break_response) or
/// `POST /_sim/response_faults`.
///
/// JSON form: `{"kind":"truncate","request":"OnlineData.listEntityUsersRq","times":1}`;
/// `kind` is `truncate`, `entity_bomb`, `malformed`, `html` or `failure` (which also takes
/// `code` and `text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleBody", into = "RuleBody")]
pub struct ResponseFaultRule {
    /// What happens to the response.
    pub fault: ResponseFault,
    /// Only batches carrying a request with this local name; for `Failure`, the request
    /// that fails. Unset: every batch (for `Failure`: every request but
    /// `Session.loginRq` and `Session.closeRq`).
    pub request: Option<String>,
    /// How many responses (for `Failure`: requests) it breaks before it retires; unset:
    /// until cleared.
    pub times: Option<u32>,
}

impl ResponseFaultRule {
    /// Checks the rule can be installed; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.request.as_deref().is_some_and(str::is_empty) {
            return Err("request must not be empty.".to_owned());
        }
        if let ResponseFault::Failure { code, .. } = &self.fault {
            if code.trim().is_empty() {
                return Err("a failure needs a code.".to_owned());
            }
        }
        Ok(())
    }

    fn is_failure(&self) -> bool {
        matches!(self.fault, ResponseFault::Failure { .. })
    }
}

/// The flat JSON shape of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// The text of a `failure` rule that names none.
const DEFAULT_FAILURE_TEXT: &str = "Simulated failure.";

impl TryFrom<RuleBody> for ResponseFaultRule {
    type Error = String;

    fn try_from(body: RuleBody) -> Result<Self, String> {
        let fault = match (body.kind.as_str(), body.code) {
            ("failure", Some(code)) => ResponseFault::Failure {
                code,
                text: body.text.unwrap_or_else(|| DEFAULT_FAILURE_TEXT.to_owned()),
            },
            ("failure", None) => return Err("a failure needs a code.".to_owned()),
            (_, Some(_)) => return Err("only a failure takes a code.".to_owned()),
            ("truncate", None) => ResponseFault::Truncate,
            ("entity_bomb", None) => ResponseFault::EntityBomb,
            ("malformed", None) => ResponseFault::Malformed,
            ("html", None) => ResponseFault::Html,
            (other, None) => {
                return Err(format!(
                    "unknown kind {other:?}: expected truncate, entity_bomb, malformed, html or failure."
                ))
            }
        };
        let rule = ResponseFaultRule {
            fault,
            request: body.request,
            times: body.times,
        };
        rule.validate()?;
        Ok(rule)
    }
}

impl From<ResponseFaultRule> for RuleBody {
    fn from(rule: ResponseFaultRule) -> Self {
        let (kind, code, text) = match rule.fault {
            ResponseFault::Truncate => ("truncate", None, None),
            ResponseFault::EntityBomb => ("entity_bomb", None, None),
            ResponseFault::Malformed => ("malformed", None, None),
            ResponseFault::Html => ("html", None, None),
            ResponseFault::Failure { code, text } => ("failure", Some(code), Some(text)),
        };
        RuleBody {
            kind: kind.to_owned(),
            request: rule.request,
            times: rule.times,
            code,
            text,
        }
    }
}

/// The installed rules, checked in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct ResponseFaultSet {
    rules: Vec<ResponseFaultRule>,
}

impl ResponseFaultSet {
    /// Installs a rule (validate it first). A rule with `times = 0` is a no-op.
    pub(crate) fn push(&mut self, rule: ResponseFaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    /// The rules still installed, with `times` counting what is left.
    pub(crate) fn rules(&self) -> Vec<ResponseFaultRule> {
        self.rules.clone()
    }

    /// Removes every rule.
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The error the request named `request` is to fail with, spending one of the first
    /// matching `Failure` rule's times.
    pub(crate) fn take_failure(&mut self, request: &str) -> Option<(String, String)> {
        let session = request == LOGIN || request == CLOSE;
        let fault = self.take_first(|rule| {
            rule.is_failure()
                && match rule.request.as_deref() {
                    Some(wanted) => wanted == request,
                    None => !session,
                }
        })?;
        match fault {
            ResponseFault::Failure { code, text } => Some((code, text)),
            _ => None,
        }
    }

    /// The whole-response fault for a batch carrying `requests`, spending one of the first
    /// matching rule's times.
    pub(crate) fn take_response(&mut self, requests: &[&str]) -> Option<ResponseFault> {
        self.take_first(|rule| {
            !rule.is_failure()
                && rule
                    .request
                    .as_deref()
                    .is_none_or(|wanted| requests.contains(&wanted))
        })
    }

    fn take_first(
        &mut self,
        eligible: impl Fn(&ResponseFaultRule) -> bool,
    ) -> Option<ResponseFault> {
        let index = self.rules.iter().position(eligible)?;
        let rule = self.rules.get_mut(index)?;
        let fault = rule.fault.clone();
        if let Some(left) = rule.times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.rules.remove(index);
            }
        }
        Some(fault)
    }
}

/// The first half of `body`, cut at a character boundary.
pub(crate) fn truncate(mut body: String) -> String {
    let mut half = body.len() / 2;
    while !body.is_char_boundary(half) {
        half -= 1;
    }
    body.truncate(half);
    body
}

/// The levels of the entity bomb: `lol1` is ten `lol`, …, `lol9` is ten `lol8` (10⁹ laughs).
const BOMB_LEVELS: u32 = 9;

/// `body` with a "billion laughs" DOCTYPE after the XML declaration and a user whose name
/// references the top entity at the start of the first `Users` list (or of `responses`).
pub(crate) fn entity_bomb(body: &str, prefix: &str) -> String {
    let mut doctype = format!("<!DOCTYPE {prefix}:Envelope [<!ENTITY lol \"lol\">");
    for level in 1..=BOMB_LEVELS {
        let below = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        doctype.push_str(&format!("<!ENTITY lol{level} \""));
        for _ in 0..10 {
            doctype.push_str(&format!("&{below};"));
        }
        doctype.push_str("\">");
    }
    doctype.push_str("]>");
    let top = format!("&lol{BOMB_LEVELS};");
    let (anchor, payload) = if body.contains("<Users>") {
        (
            "<Users>",
            format!("<User id=\"0\" name=\"{top}\" email=\"lol@example.com\" fullName=\"{top}\" status=\"Active\"/>"),
        )
    } else {
        ("<responses>", top)
    };
    let with_payload = insert_after(body, anchor, &payload);
    insert_after(&with_payload, "?>", &doctype)
}

/// `body` with a mismatched closing tag before the middle `User` of the first list (or at
/// the start of `responses`).
pub(crate) fn malformed(body: &str) -> String {
    let users: Vec<usize> = body.match_indices("<User ").map(|(at, _)| at).collect();
    let broken = "<User id=\"0\" name=\"broken\" status=\"Active\"></Role>";
    match users.get(users.len() / 2) {
        Some(&at) => {
            let (head, tail) = body.split_at(at);
            format!("{head}{broken}{tail}")
        }
        None => insert_after(body, "<responses>", broken),
    }
}

/// The HTML error page a proxy in front of the server might answer with.
pub(crate) const HTML_PAGE: &str =
    "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\
<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. \
Please try again later.</p><hr><address>Microsoft-IIS/10.0</address></body></html>\n";

/// `body` with `insert` after the first `anchor` (at the end when there is none).
fn insert_after(body: &str, anchor: &str, insert: &str) -> String {
    let at = body
        .find(anchor)
        .map_or(body.len(), |found| found + anchor.len());
    let (head, tail) = body.split_at(at);
    format!("{head}{insert}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_json_and_refuse_nonsense() {
        let rule: ResponseFaultRule = serde_json::from_str(
            r#"{"kind":"failure","request":"Security.lockUserAccountRq","times":2,"code":"Busy"}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            ResponseFaultRule {
                fault: ResponseFault::Failure {
                    code: "Busy".into(),
                    text: DEFAULT_FAILURE_TEXT.into()
                },
                request: Some("Security.lockUserAccountRq".into()),
                times: Some(2),
            }
        );
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(json["kind"], "failure");
        assert_eq!(json["text"], DEFAULT_FAILURE_TEXT);
        let again: ResponseFaultRule = serde_json::from_value(json).unwrap();
        assert_eq!(again, rule);
        let bomb: ResponseFaultRule = serde_json::from_str(r#"{"kind":"entity_bomb"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&bomb).unwrap(),
            r#"{"kind":"entity_bomb"}"#
        );
        for bad in [
            r#"{"kind":"failure"}"#,
            r#"{"kind":"failure","code":" "}"#,
            r#"{"kind":"html","code":"X"}"#,
            r#"{"kind":"slow"}"#,
            r#"{"kind":"html","request":""}"#,
            r#"{"kind":"html","extra":1}"#,
        ] {
            assert!(
                serde_json::from_str::<ResponseFaultRule>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn failures_skip_session_requests_unless_named_and_times_run_out() {
        let mut set = ResponseFaultSet::default();
        let failure = |request: Option<&str>, times| ResponseFaultRule {
            fault: ResponseFault::Failure {
                code: "C".into(),
                text: "T".into(),
            },
            request: request.map(str::to_owned),
            times,
        };
        set.push(failure(None, Some(1)));
        set.push(failure(Some(LOGIN), Some(1)));
        set.push(ResponseFaultRule {
            fault: ResponseFault::Html,
            request: Some("Security.listRolesRq".into()),
            times: Some(0),
        });
        assert_eq!(set.rules().len(), 2, "times 0 is a no-op");
        assert_eq!(set.take_failure(CLOSE), None);
        assert!(set.take_failure(LOGIN).is_some());
        assert_eq!(set.take_failure(LOGIN), None);
        assert_eq!(
            set.take_failure("Security.listRolesRq"),
            Some(("C".into(), "T".into()))
        );
        assert!(set.rules().is_empty());
        set.push(ResponseFaultRule {
            fault: ResponseFault::Truncate,
            request: Some("Security.listRolesRq".into()),
            times: None,
        });
        assert_eq!(set.take_response(&[LOGIN]), None);
        assert_eq!(
            set.take_response(&[LOGIN, "Security.listRolesRq"]),
            Some(ResponseFault::Truncate)
        );
        assert_eq!(set.rules().len(), 1, "unlimited");
        assert_eq!(
            set.take_failure("Security.listRolesRq"),
            None,
            "not a failure"
        );
        set.clear();
        assert!(set.rules().is_empty());
    }

    #[test]
    fn mangling_keeps_or_breaks_what_it_should() {
        let body = "<?xml version=\"1.0\"?><r><responses><Users><User id=\"1\"/><User id=\"2\"/>\
                    <User id=\"3\"/></Users></responses></r>";
        let cut = truncate(format!("{body}é"));
        assert!(cut.len() <= body.len() / 2 + 2);
        assert!(body.starts_with(&cut));
        let bomb = entity_bomb(body, "soap");
        assert!(bomb.starts_with("<?xml version=\"1.0\"?><!DOCTYPE soap:Envelope [<!ENTITY lol \"lol\"><!ENTITY lol1 \"&lol;&lol;"));
        assert!(bomb.contains("<!ENTITY lol9 \"&lol8;"));
        assert!(bomb.contains("<Users><User id=\"0\" name=\"&lol9;\""));
        let broken = malformed(body);
        assert!(broken.contains("<User id=\"2\"/>") && broken.contains("</Role><User id=\"2\"/>"));
        let no_users = "<x><responses></responses></x>";
        assert_eq!(entity_bomb(no_users, "s").matches("&lol9;").count(), 1);
        assert!(malformed(no_users).contains("<responses><User id=\"0\""));
    }
}
