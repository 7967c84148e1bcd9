//! Duck Creek's batch protocol: every call is one self-contained `<server><requests>` batch
//! (the login, the work, the close) posted to the SOAP endpoint, answered by one `…Rs` per
//! request in order, each `status="Success"` or `status="Failure"` with
//! `Errors/Error/@code @text`. No session survives between calls.
//!
//! The answer is read as a stream (`Batch`); lists inside it are read item by item
//! (`ListReader`), so a large user list is never held as a document.

use secrecy::ExposeSecret;

use super::{
    DuckCreekConnector, CLOSE, LIST_ENTITIES, LIST_PRIVILEGES, LIST_ROLES, LIST_USERS, LOGIN,
};
use crate::connector::http::BodyReader;
use crate::connector::soap::{CallKind, SoapResponse};
use crate::connector::xml::{escape, Element, XmlError, XmlReader};
use crate::connector::ConnectorError;

impl DuckCreekConnector {
    /// The `<server>` document of one batch — login, `requests`, close — in the configured
    /// wrapper, if any.
    fn batch_body(&self, requests: &str) -> String {
        let (open, close) = &self.wrapper;
        format!(
            "{open}<server><requests><{LOGIN} userName=\"{}\" password=\"{}\"/>{requests}\
             <{CLOSE}/></requests></server>{close}",
            escape(&self.username),
            escape(self.password.expose_secret()),
        )
    }

    /// Posts one batch holding `requests` and reads the answer up to the login's (which must
    /// succeed).
    pub(super) async fn open_batch(
        &self,
        what: &str,
        requests: &str,
        kind: CallKind,
    ) -> Result<Batch<'_>, ConnectorError> {
        let response = self
            .soap
            .call(what, &self.batch_body(requests), kind)
            .await?;
        let mut batch = Batch {
            connector: self,
            response,
        };
        batch.enter_responses().await?;
        match batch.next_answer(LOGIN).await? {
            Answer::Success(element) => batch.leave(&element).await?,
            Answer::Failure(failure) => {
                return Err(ConnectorError::Auth {
                    target: self.core.target().to_string(),
                    message: self.soap.http().redact(&format!(
                        "Duck Creek refused the login of user {}: {}",
                        self.username,
                        failure.describe()
                    )),
                })
            }
        }
        Ok(batch)
    }

    /// A reader of the lists `specs` asks for, in one batch.
    pub(super) async fn open_lists(
        &self,
        what: &'static str,
        specs: Vec<ListSpec>,
    ) -> Result<ListReader<'_>, ConnectorError> {
        let requests: String = specs.iter().map(|spec| spec.xml.as_str()).collect();
        let batch = self.open_batch(what, &requests, CallKind::Read).await?;
        Ok(ListReader {
            batch,
            specs,
            index: 0,
            inside: false,
            finished: false,
        })
    }
}

/// One list in a batch: the request, its XML, and the element its items sit in.
pub(super) struct ListSpec {
    pub(super) request: &'static str,
    pub(super) xml: String,
    pub(super) container: &'static str,
}

/// The users of entity `entity_id`.
pub(super) fn users_spec(entity_id: &str) -> ListSpec {
    ListSpec {
        request: LIST_USERS,
        xml: format!("<{LIST_USERS} entityID=\"{}\"/>", escape(entity_id)),
        container: "Users",
    }
}

/// The roles (without their privileges).
pub(super) fn roles_spec() -> ListSpec {
    ListSpec {
        request: LIST_ROLES,
        xml: format!("<{LIST_ROLES} includePrivileges=\"false\"/>"),
        container: "Roles",
    }
}

/// The entities.
pub(super) fn entities_spec() -> ListSpec {
    ListSpec {
        request: LIST_ENTITIES,
        xml: format!("<{LIST_ENTITIES}/>"),
        container: "Entities",
    }
}

/// The privileges.
pub(super) fn privileges_spec() -> ListSpec {
    ListSpec {
        request: LIST_PRIVILEGES,
        xml: format!("<{LIST_PRIVILEGES}/>"),
        container: "Privileges",
    }
}

/// An item of a list: its element and, for users, the role and entity names it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Item {
    pub(super) element: Element,
    pub(super) roles: Vec<String>,
    pub(super) entities: Vec<String>,
    /// Where a `Role` or `UserEntityMembership` came without its name (one entry each,
    /// e.g. `Roles/Role/@name`): left out, for the mapping to note.
    pub(super) unnamed: Vec<&'static str>,
}

/// The answer to one request of a batch.
pub(super) enum Answer {
    /// `status="Success"`: the `…Rs` element, entered unless empty.
    Success(Element),
    /// `status="Failure"`, read whole.
    Failure(RequestFailure),
}

/// A request answered `status="Failure"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RequestFailure {
    pub(super) request: String,
    pub(super) errors: Vec<(String, String)>,
}

impl RequestFailure {
    /// Whether every error code is one of `codes` (and there is at least one).
    pub(super) fn only(&self, codes: &[impl AsRef<str>]) -> bool {
        !self.errors.is_empty()
            && self
                .errors
                .iter()
                .all(|(code, _)| codes.iter().any(|c| c.as_ref().eq_ignore_ascii_case(code)))
    }

    /// `Security.addUserRoleRq failed: code: text; code: text`.
    pub(super) fn describe(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(code, text)| match (code.is_empty(), text.is_empty()) {
                (false, false) => format!("{code}: {text}"),
                (true, false) => text.clone(),
                (false, true) => code.clone(),
                (true, true) => "no detail".to_string(),
            })
            .collect();
        if errors.is_empty() {
            format!("{} failed (no Errors given)", self.request)
        } else {
            format!("{} failed: {}", self.request, errors.join("; "))
        }
    }
}

/// One batch's answer being read.
pub(super) struct Batch<'a> {
    connector: &'a DuckCreekConnector,
    response: SoapResponse,
}

impl Batch<'_> {
    fn reader(&mut self) -> &mut XmlReader<BodyReader> {
        self.response.reader()
    }

    fn fail(&self, err: XmlError) -> ConnectorError {
        self.connector.soap.read_error(self.response.what(), err)
    }

    fn malformed(&self, message: String) -> ConnectorError {
        ConnectorError::malformed(
            self.connector.core.target(),
            format!("the answer to {}: {message}", self.response.what()),
        )
    }

    /// Walks from the first element in `Body` down to `responses` (through
    /// `processRequestsAsDOMResponse`, `result` and `server`, whichever are there).
    async fn enter_responses(&mut self) -> Result<(), ConnectorError> {
        let Some(mut current) = self.response.payload() else {
            return Err(self.malformed("the SOAP Body is empty".to_string()));
        };
        for _ in 0..6 {
            if current.local == "responses" && !current.empty {
                return Ok(());
            }
            if current.empty {
                break;
            }
            match self.reader().next_child().await {
                Ok(Some(child)) => current = child,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            }
        }
        Err(self.malformed(
            "it holds no <responses> element (expected \
             processRequestsAsDOMResponse/result/server/responses)"
                .to_string(),
        ))
    }

    /// Reads the answer to `request` (`X.yRq` is answered by `X.yRs`).
    pub(super) async fn next_answer(&mut self, request: &str) -> Result<Answer, ConnectorError> {
        let expected = answer_name(request);
        let element = match self.reader().next_child().await {
            Ok(Some(element)) => element,
            Ok(None) => {
                return Err(self.malformed(format!("it has no <{expected}> (answers ended)")))
            }
            Err(err) => return Err(self.fail(err)),
        };
        if element.local != expected {
            return Err(self.malformed(format!("expected <{expected}>, found <{}>", element.local)));
        }
        match element.attr_ignore_case("status") {
            Some(status) if status.eq_ignore_ascii_case("Success") => Ok(Answer::Success(element)),
            Some(status) if status.eq_ignore_ascii_case("Failure") => {
                let errors = self.read_errors(&element).await?;
                Ok(Answer::Failure(RequestFailure {
                    request: request.to_string(),
                    errors,
                }))
            }
            Some(other) => Err(self.malformed(format!(
                "<{expected}> has status=\"{other}\" (expected Success or Failure)"
            ))),
            None => Err(self.malformed(format!("<{expected}> has no status"))),
        }
    }

    /// The `(code, text)` of each `Errors/Error` of a failed answer, which is read whole.
    async fn read_errors(
        &mut self,
        answer: &Element,
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let mut errors = Vec::new();
        if answer.empty {
            return Ok(errors);
        }
        while let Some(child) = self.reader().next_child().await.map_err(|e| self.fail(e))? {
            if child.local != "Errors" || child.empty {
                self.leave(&child).await?;
                continue;
            }
            while let Some(error) = self.reader().next_child().await.map_err(|e| self.fail(e))? {
                let code = error
                    .attr_ignore_case("code")
                    .unwrap_or_default()
                    .to_string();
                let mut text = error
                    .attr_ignore_case("text")
                    .unwrap_or_default()
                    .to_string();
                let content = self.reader().text(&error).await.map_err(|e| self.fail(e))?;
                if text.is_empty() {
                    text = content.trim().to_string();
                }
                errors.push((code, text));
            }
        }
        Ok(errors)
    }

    /// Skips the rest of `element`.
    pub(super) async fn leave(&mut self, element: &Element) -> Result<(), ConnectorError> {
        let result = self.reader().skip(element).await;
        result.map_err(|err| self.fail(err))
    }

    /// Reads the rest of the answer (remaining answers, the close's among them, are not
    /// judged) and checks the document is complete.
    pub(super) async fn finish(&mut self) -> Result<(), ConnectorError> {
        loop {
            let next = self.reader().next_child().await;
            match next {
                Ok(Some(element)) => self.leave(&element).await?,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            }
        }
        let connector = self.connector;
        self.response.finish(&connector.soap).await
    }
}

/// `X.yRs` for `X.yRq`.
fn answer_name(request: &str) -> String {
    match request.strip_suffix("Rq") {
        Some(stem) => format!("{stem}Rs"),
        None => format!("{request}Rs"),
    }
}

/// Reads the items of several lists of one batch in order.
pub(super) struct ListReader<'a> {
    batch: Batch<'a>,
    specs: Vec<ListSpec>,
    /// The list being read (or next to open).
    index: usize,
    /// Whether the reader stands inside the current list's container.
    inside: bool,
    finished: bool,
}

impl ListReader<'_> {
    /// The next item and the index of its list; `None` once every list has been read and
    /// the answer found complete.
    pub(super) async fn next_item(&mut self) -> Result<Option<(usize, Item)>, ConnectorError> {
        loop {
            if self.inside {
                let next = self.batch.reader().next_child().await;
                match next.map_err(|err| self.batch.fail(err))? {
                    Some(element) => return Ok(Some((self.index, self.read_item(element).await?))),
                    None => {
                        // The container ended; leave the rest of its answer.
                        self.leave_answer().await?;
                        self.inside = false;
                        self.index += 1;
                        continue;
                    }
                }
            }
            let Some(spec) = self.specs.get(self.index) else {
                if !self.finished {
                    self.batch.finish().await?;
                    self.finished = true;
                }
                return Ok(None);
            };
            let (request, container) = (spec.request, spec.container);
            match self.batch.next_answer(request).await? {
                Answer::Failure(failure) => {
                    let hint = if request == LIST_USERS && failure.only(&["EntityNotFound"]) {
                        " (check entity_id)"
                    } else {
                        ""
                    };
                    return Err(ConnectorError::Permanent {
                        target: self.batch.connector.core.target().to_string(),
                        status: None,
                        message: format!("{}{hint}", failure.describe()),
                    });
                }
                Answer::Success(answer) => {
                    if answer.empty {
                        return Err(self.batch.malformed(format!(
                            "<{}> holds no <{container}>",
                            answer_name(request)
                        )));
                    }
                    self.enter_container(request, container).await?;
                }
            }
        }
    }

    /// Finds `container` among the answer's children and enters it (an empty one is a list
    /// of nothing: the answer is left at once).
    async fn enter_container(
        &mut self,
        request: &str,
        container: &str,
    ) -> Result<(), ConnectorError> {
        loop {
            let next = self.batch.reader().next_child().await;
            match next.map_err(|err| self.batch.fail(err))? {
                Some(element) if element.local == container => {
                    if element.empty {
                        self.leave_answer().await?;
                        self.index += 1;
                    } else {
                        self.inside = true;
                    }
                    return Ok(());
                }
                Some(other) => self.batch.leave(&other).await?,
                None => {
                    return Err(self
                        .batch
                        .malformed(format!("<{}> holds no <{container}>", answer_name(request))))
                }
            }
        }
    }

    /// Skips what remains of the current answer after its container.
    async fn leave_answer(&mut self) -> Result<(), ConnectorError> {
        loop {
            let next = self.batch.reader().next_child().await;
            match next.map_err(|err| self.batch.fail(err))? {
                Some(element) => self.batch.leave(&element).await?,
                None => return Ok(()),
            }
        }
    }

    /// An item with the role and entity names of its `Roles` and `UserEntityMemberships`.
    async fn read_item(&mut self, element: Element) -> Result<Item, ConnectorError> {
        let mut item = Item {
            element,
            ..Item::default()
        };
        if item.element.empty {
            return Ok(item);
        }
        while let Some(child) = self
            .batch
            .reader()
            .next_child()
            .await
            .map_err(|err| self.batch.fail(err))?
        {
            let (member, attribute, field, names) = match child.local.as_str() {
                "Roles" => ("Role", "name", "Roles/Role/@name", &mut item.roles),
                "UserEntityMemberships" => (
                    "UserEntityMembership",
                    "entityName",
                    "UserEntityMemberships/UserEntityMembership/@entityName",
                    &mut item.entities,
                ),
                _ => {
                    self.batch.leave(&child).await?;
                    continue;
                }
            };
            if child.empty {
                continue;
            }
            while let Some(grant) = self
                .batch
                .reader()
                .next_child()
                .await
                .map_err(|err| self.batch.fail(err))?
            {
                if grant.local == member {
                    match grant
                        .attr(attribute)
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                    {
                        Some(name) => names.push(name.to_string()),
                        None => item.unnamed.push(field),
                    }
                }
                self.batch.leave(&grant).await?;
            }
        }
        Ok(item)
    }
}
