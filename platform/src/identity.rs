//! Who a call is made for, as the gateway tells the services in request metadata.
//!
//! The gateway is the only public door: it verifies the caller's token and passes the result on in two metadata
//! entries, `shop-caller-subject` (the token's `sub`) and `shop-caller-role` (`customer` or `staff`). The services
//! trust them because their gRPC ports belong on a private network that only the gateway reaches; they use them for
//! defence in depth (the order service refuses an order for an account the caller does not own) and to record who
//! owns what (the account service binds a new account to its subject). A call without them comes from inside that
//! network with no end user behind it (the gateway with authentication disabled, a tool, a test), and is not
//! restricted.

use tonic::{Request, metadata::MetadataValue};

/// Metadata key of the caller's subject.
pub const SUBJECT: &str = "shop-caller-subject";
/// Metadata key of the caller's role.
pub const ROLE: &str = "shop-caller-role";

/// What a caller may do beyond its own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its own account and orders only.
    Customer,
    /// Catalog writes and every account and order.
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
        }
    }
}

/// An authenticated end user, as the gateway established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's subject: stable, unique per issuer, opaque.
    pub subject: String,
    pub role: Role,
}

impl Identity {
    pub fn is_staff(&self) -> bool {
        self.role == Role::Staff
    }

    /// Whether this identity may act on data owned by `owner` (staff may act on anyone's).
    pub fn may_act_for(&self, owner: Option<&str>) -> bool {
        self.is_staff() || owner == Some(self.subject.as_str())
    }
}

/// Why identity metadata could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("`{SUBJECT}` and `{ROLE}` must be sent together")]
    Incomplete,
    #[error("`{SUBJECT}` must be 1 to 255 visible ASCII characters or spaces")]
    InvalidSubject,
    #[error("`{ROLE}` must be `customer` or `staff`")]
    InvalidRole,
}

impl From<IdentityError> for crate::ServiceError {
    fn from(error: IdentityError) -> Self {
        let field = match error {
            IdentityError::InvalidRole => ROLE,
            IdentityError::Incomplete | IdentityError::InvalidSubject => SUBJECT,
        };
        Self::invalid(field, error.to_string())
    }
}

/// The identity a request carries: `None` when it carries none (an unrestricted caller), an error when what it
/// carries is malformed (which a service answers INVALID_ARGUMENT: a broken gateway must not fall back to
/// unrestricted).
pub fn identity_of<T>(request: &Request<T>) -> Result<Option<Identity>, IdentityError> {
    let metadata = request.metadata();
    let (subject, role) = match (metadata.get(SUBJECT), metadata.get(ROLE)) {
        (None, None) => return Ok(None),
        (Some(subject), Some(role)) => (subject, role),
        _ => return Err(IdentityError::Incomplete),
    };
    // The same rule as `attach_identity`: what a service accepts is what the gateway can send, so a subject stored
    // as an owner always fits the owners' columns and travels back unchanged (metadata alone would let a tab in).
    let subject = subject
        .to_str()
        .ok()
        .filter(|subject| is_sendable_subject(subject))
        .ok_or(IdentityError::InvalidSubject)?;
    let role = match role.to_str() {
        Ok("customer") => Role::Customer,
        Ok("staff") => Role::Staff,
        _ => return Err(IdentityError::InvalidRole),
    };
    Ok(Some(Identity { subject: subject.to_owned(), role }))
}

/// Adds `identity` to `request`'s metadata. A subject that cannot be sent as metadata (not visible ASCII) is
/// refused: the gateway rejects such tokens before it calls anything.
pub fn attach_identity<T>(request: &mut Request<T>, identity: &Identity) -> Result<(), IdentityError> {
    if !is_sendable_subject(&identity.subject) {
        return Err(IdentityError::InvalidSubject);
    }
    let subject: MetadataValue<_> = identity.subject.parse().map_err(|_| IdentityError::InvalidSubject)?;
    let metadata = request.metadata_mut();
    metadata.insert(SUBJECT, subject);
    metadata.insert(ROLE, MetadataValue::from_static(identity.role.as_str()));
    Ok(())
}

/// Whether `subject` can travel as metadata: non-empty visible ASCII and spaces (OpenID Connect's `sub` is at most
/// 255 ASCII characters).
pub fn is_sendable_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= 255
        && subject.bytes().all(|byte| byte == b' ' || byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(subject: &str) -> Identity {
        Identity { subject: subject.to_owned(), role: Role::Customer }
    }

    #[test]
    fn an_identity_travels_in_metadata_unchanged() {
        for identity in [customer("alice"), Identity { subject: "ops|7".into(), role: Role::Staff }] {
            let mut request = Request::new(());
            attach_identity(&mut request, &identity).unwrap();

            assert_eq!(identity_of(&request), Ok(Some(identity)));
        }
    }

    #[test]
    fn a_request_without_identity_is_unrestricted() {
        assert_eq!(identity_of(&Request::new(())), Ok(None));
    }

    #[test]
    fn half_an_identity_or_an_unknown_role_is_an_error_not_unrestricted() {
        let mut only_subject = Request::new(());
        only_subject.metadata_mut().insert(SUBJECT, MetadataValue::from_static("alice"));
        assert_eq!(identity_of(&only_subject), Err(IdentityError::Incomplete));

        let mut unknown_role = Request::new(());
        unknown_role.metadata_mut().insert(SUBJECT, MetadataValue::from_static("alice"));
        unknown_role.metadata_mut().insert(ROLE, MetadataValue::from_static("admin"));
        assert_eq!(identity_of(&unknown_role), Err(IdentityError::InvalidRole));
    }

    #[test]
    fn a_subject_that_could_not_be_attached_is_not_read_either() {
        for subject in ["", "al\tice", &"a".repeat(256)] {
            let mut request = Request::new(());
            request.metadata_mut().insert(SUBJECT, subject.parse().unwrap());
            request.metadata_mut().insert(ROLE, MetadataValue::from_static("customer"));

            assert_eq!(identity_of(&request), Err(IdentityError::InvalidSubject), "{subject:?}");
        }
    }

    #[test]
    fn a_subject_that_is_not_ascii_cannot_be_attached() {
        let mut request = Request::new(());

        assert_eq!(attach_identity(&mut request, &customer("al\u{e9}")), Err(IdentityError::InvalidSubject));
    }

    #[test]
    fn staff_may_act_for_anyone_a_customer_only_for_itself() {
        let staff = Identity { subject: "ops".into(), role: Role::Staff };

        assert!(customer("alice").may_act_for(Some("alice")));
        assert!(!customer("alice").may_act_for(Some("bob")));
        assert!(!customer("alice").may_act_for(None));
        assert!(staff.may_act_for(Some("bob")) && staff.may_act_for(None));
    }
}
