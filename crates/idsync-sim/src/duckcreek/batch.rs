//! Running a logged-in batch: one `…Rs` per request, in order, each `status="Success"` or
//! `status="Failure"` with `<Errors><Error code text/></Errors>`.
//!
//! `Session.loginRq` opens the session (the credentials were checked before the batch ran)
//! and `Session.closeRq` ends it; other requests while it is closed fail `NotLoggedIn`. An
//! unknown request fails `UnknownRequest` and the batch goes on. A `Failure` response fault
//! answers its request without running it.

use super::data::{AssignError, DcUserStatus};
use super::soap::{self, Batch, InnerRequest, Xml, SERVICE_NS};
use super::DuckCreekState;

/// The login request every batch starts with.
pub(crate) const LOGIN: &str = "Session.loginRq";
/// The request that ends a session.
pub(crate) const CLOSE: &str = "Session.closeRq";

/// The requests the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Login,
    Close,
    ListEntityUsers,
    ListRoles,
    ListEntities,
    ListPrivileges,
    Lock,
    Unlock,
    AddRole,
    RemoveRole,
    AddMembership,
    RemoveMembership,
    Unknown,
}

const OPS: [(Op, &str); 12] = [
    (Op::Login, LOGIN),
    (Op::Close, CLOSE),
    (Op::ListEntityUsers, "OnlineData.listEntityUsersRq"),
    (Op::ListRoles, "Security.listRolesRq"),
    (Op::ListEntities, "OnlineData.listEntitiesRq"),
    (Op::ListPrivileges, "Security.listPrivilegesRq"),
    (Op::Lock, "Security.lockUserAccountRq"),
    (Op::Unlock, "Security.unlockUserAccountRq"),
    (Op::AddRole, "Security.addUserRoleRq"),
    (Op::RemoveRole, "Security.removeUserRoleRq"),
    (Op::AddMembership, "OnlineData.addEntityMembershipRq"),
    (Op::RemoveMembership, "OnlineData.removeEntityMembershipRq"),
];

impl Op {
    /// The request a request element's local name names (`Unknown` for the rest).
    pub(crate) fn parse(name: &str) -> Self {
        OPS.iter()
            .find(|(_, known)| *known == name)
            .map_or(Op::Unknown, |(op, _)| *op)
    }

    /// The request's name, `unknown` for names the simulator does not know (a bounded set,
    /// for counters and logs).
    pub(crate) fn label(self) -> &'static str {
        OPS.iter()
            .find(|(op, _)| *op == self)
            .map_or("unknown", |(_, name)| name)
    }
}

/// The response element for a request element: `…Rq` becomes `…Rs`, anything else gets
/// `Rs` appended.
fn response_name(request: &str) -> String {
    match request.strip_suffix("Rq") {
        Some(stem) => format!("{stem}Rs"),
        None => format!("{request}Rs"),
    }
}

/// What a successful request carries inside its `…Rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    Empty,
    /// The users listed for an entity id.
    Users(u64),
    Roles {
        privileges: bool,
    },
    Entities,
    Privileges,
}

/// A per-request failure: `<Errors><Error code="…" text="…"/></Errors>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RsError {
    pub(crate) code: String,
    pub(crate) text: String,
}

impl RsError {
    fn new(code: &str, text: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            text: text.into(),
        }
    }

    fn invalid(text: impl Into<String>) -> Self {
        Self::new("InvalidRequest", text)
    }

    fn no_user_named(name: &str) -> Self {
        Self::new("UserNotFound", format!("No user named \"{name}\"."))
    }

    fn no_user_id(id: u64) -> Self {
        Self::new("UserNotFound", format!("No user with ID {id}."))
    }
}

impl DuckCreekState {
    /// Runs a logged-in batch and writes the response envelope.
    pub(crate) fn run(&mut self, batch: &Batch) -> String {
        let lists_users = batch
            .requests
            .iter()
            .filter(|r| Op::parse(&r.name) == Op::ListEntityUsers)
            .count();
        let capacity = 1024 + lists_users.saturating_mul(self.dir.users.len().saturating_mul(320));
        let mut xml = Xml::with_capacity(capacity);
        soap::open_envelope(&mut xml, &self.prefix);
        xml.open("processRequestsAsDOMResponse")
            .attr("xmlns", SERVICE_NS)
            .raw("><result><server><responses>");
        let mut session = false;
        for request in &batch.requests {
            let op = Op::parse(&request.name);
            let injected = self.response_faults.take_failure(&request.name);
            let outcome = match (op, injected) {
                (_, Some((code, text))) => Err(RsError { code, text }),
                (Op::Login, None) => {
                    session = true;
                    Ok(Body::Empty)
                }
                (Op::Close, None) => {
                    session = false;
                    Ok(Body::Empty)
                }
                (Op::Unknown, None) => Err(unknown(&request.name)),
                (_, None) if !session => Err(RsError::new(
                    "NotLoggedIn",
                    "Not logged in: send Session.loginRq first.",
                )),
                (op, None) => self.execute(op, request),
            };
            self.write_rs(&mut xml, &response_name(&request.name), outcome);
        }
        xml.raw("</responses></server></result></processRequestsAsDOMResponse>");
        soap::close_envelope(&mut xml, &self.prefix);
        xml.finish()
    }

    fn write_rs(&self, xml: &mut Xml, rs: &str, outcome: Result<Body, RsError>) {
        match outcome {
            Ok(Body::Empty) => {
                xml.open(rs).attr("status", "Success").end_empty();
            }
            Ok(body) => {
                xml.open(rs).attr("status", "Success").end();
                match body {
                    Body::Empty => {}
                    Body::Users(entity) => self.dir.write_users(xml, entity),
                    Body::Roles { privileges } => self.dir.write_roles(xml, privileges),
                    Body::Entities => self.dir.write_entities(xml),
                    Body::Privileges => self.dir.write_privileges(xml),
                }
                xml.close(rs);
            }
            Err(error) => {
                xml.open(rs)
                    .attr("status", "Failure")
                    .raw("><Errors>")
                    .open("Error")
                    .attr("code", &error.code)
                    .attr("text", &error.text)
                    .end_empty()
                    .raw("</Errors>")
                    .close(rs);
            }
        }
    }

    /// Runs one request of a logged-in batch.
    fn execute(&mut self, op: Op, request: &InnerRequest) -> Result<Body, RsError> {
        match op {
            Op::Login | Op::Close => Ok(Body::Empty),
            Op::Unknown => Err(unknown(&request.name)),
            Op::ListEntityUsers => {
                let id = number(request, "entityID")?;
                if self.dir.entity(id).is_none() {
                    return Err(RsError::new(
                        "EntityNotFound",
                        format!("No entity with ID {id}."),
                    ));
                }
                Ok(Body::Users(id))
            }
            Op::ListRoles => Ok(Body::Roles {
                privileges: flag(request, "includePrivileges")?,
            }),
            Op::ListEntities => Ok(Body::Entities),
            Op::ListPrivileges => Ok(Body::Privileges),
            Op::Lock => self.set_status(request, DcUserStatus::Locked),
            Op::Unlock => self.set_status(request, DcUserStatus::Active),
            Op::AddRole | Op::RemoveRole => self.change_role(op == Op::AddRole, request),
            Op::AddMembership | Op::RemoveMembership => {
                self.change_membership(op == Op::AddMembership, request)
            }
        }
    }

    /// Locks or unlocks; the same status again is a success.
    fn set_status(
        &mut self,
        request: &InnerRequest,
        status: DcUserStatus,
    ) -> Result<Body, RsError> {
        let id = self.target_user(request)?;
        let user = self
            .dir
            .user_mut(id)
            .ok_or_else(|| RsError::no_user_id(id))?;
        user.status = status;
        Ok(Body::Empty)
    }

    /// The user a lock or unlock names by `userID`, `userName` or both (which must agree).
    fn target_user(&self, request: &InnerRequest) -> Result<u64, RsError> {
        let by_id = match present(request, "userID") {
            Some(text) => Some(parse_number("userID", text)?),
            None => None,
        };
        match (by_id, present(request, "userName")) {
            (None, None) => Err(RsError::invalid(
                "Missing required attribute userName (or userID).",
            )),
            (Some(id), None) => self
                .dir
                .user(id)
                .map(|user| user.id)
                .ok_or_else(|| RsError::no_user_id(id)),
            (None, Some(name)) => self
                .dir
                .user_id_named(name)
                .ok_or_else(|| RsError::no_user_named(name)),
            (Some(id), Some(name)) => {
                let named = self
                    .dir
                    .user_id_named(name)
                    .ok_or_else(|| RsError::no_user_named(name))?;
                if self.dir.user(id).is_none() {
                    return Err(RsError::no_user_id(id));
                }
                if named == id {
                    Ok(id)
                } else {
                    Err(RsError::invalid(format!(
                        "userID {id} and userName \"{name}\" name different users."
                    )))
                }
            }
        }
    }

    fn change_role(&mut self, add: bool, request: &InnerRequest) -> Result<Body, RsError> {
        let user_name = required(request, "userName")?;
        let role_name = required(request, "roleName")?;
        let user = self
            .dir
            .user_id_named(user_name)
            .ok_or_else(|| RsError::no_user_named(user_name))?;
        let role = self
            .dir
            .role_named(role_name)
            .map(|role| role.id)
            .ok_or_else(|| {
                RsError::new("RoleNotFound", format!("No role named \"{role_name}\"."))
            })?;
        let result = if add {
            self.dir.grant(user, role)
        } else {
            self.dir.revoke(user, role)
        };
        assigned(result, user_name, "role", role_name)
    }

    fn change_membership(&mut self, add: bool, request: &InnerRequest) -> Result<Body, RsError> {
        let user_name = required(request, "userName")?;
        let entity_name = required(request, "entityName")?;
        let user = self
            .dir
            .user_id_named(user_name)
            .ok_or_else(|| RsError::no_user_named(user_name))?;
        let entity = self
            .dir
            .entity_named(entity_name)
            .map(|entity| entity.id)
            .ok_or_else(|| {
                RsError::new(
                    "EntityNotFound",
                    format!("No entity named \"{entity_name}\"."),
                )
            })?;
        let result = if add {
            self.dir.join(user, entity)
        } else {
            self.dir.leave(user, entity)
        };
        assigned(result, user_name, "membership in entity", entity_name)
    }
}

fn assigned(
    result: Result<(), AssignError>,
    user: &str,
    what: &str,
    name: &str,
) -> Result<Body, RsError> {
    match result {
        Ok(()) => Ok(Body::Empty),
        Err(AssignError::UnknownUser) => Err(RsError::no_user_named(user)),
        Err(AssignError::AlreadyAssigned) => Err(RsError::new(
            "AlreadyAssigned",
            format!("User \"{user}\" already holds {what} \"{name}\"."),
        )),
        Err(AssignError::NotAssigned) => Err(RsError::new(
            "NotAssigned",
            format!("User \"{user}\" does not hold {what} \"{name}\"."),
        )),
    }
}

fn unknown(name: &str) -> RsError {
    RsError::new("UnknownRequest", format!("Unknown request {name}."))
}

/// The attribute's value, unless it is missing or blank.
fn present<'a>(request: &'a InnerRequest, name: &str) -> Option<&'a str> {
    request.attr(name).filter(|value| !value.trim().is_empty())
}

fn required<'a>(request: &'a InnerRequest, name: &str) -> Result<&'a str, RsError> {
    present(request, name)
        .ok_or_else(|| RsError::invalid(format!("Missing required attribute {name}.")))
}

fn parse_number(name: &str, text: &str) -> Result<u64, RsError> {
    text.trim()
        .parse()
        .map_err(|_| RsError::invalid(format!("{name} must be a whole number.")))
}

fn number(request: &InnerRequest, name: &str) -> Result<u64, RsError> {
    parse_number(name, required(request, name)?)
}

/// An `xs:boolean` attribute; missing is false.
fn flag(request: &InnerRequest, name: &str) -> Result<bool, RsError> {
    match request.attr(name).map(str::trim) {
        None => Ok(false),
        Some(text) if text.eq_ignore_ascii_case("true") || text == "1" => Ok(true),
        Some(text) if text.eq_ignore_ascii_case("false") || text == "0" || text.is_empty() => {
            Ok(false)
        }
        Some(_) => Err(RsError::invalid(format!("{name} must be true or false."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(
            response_name("Security.listRolesRq"),
            "Security.listRolesRs"
        );
        assert_eq!(response_name("Odd"), "OddRs");
        for (op, name) in OPS {
            assert_eq!(Op::parse(name), op);
            assert_eq!(op.label(), name);
        }
        assert_eq!(
            Op::parse("security.listRolesRq"),
            Op::Unknown,
            "names keep their case"
        );
        assert_eq!(Op::Unknown.label(), "unknown");
    }
}
