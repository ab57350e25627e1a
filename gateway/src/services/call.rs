//! [`Call`]: what one request brings to every service call it makes — its trace, and who it is from — and the
//! access rules that follow from who it is from.
//!
//! | caller | catalog reads | catalog writes | accounts and orders |
//! |---|---|---|---|
//! | unrestricted (authentication disabled) | yes | yes | all |
//! | anonymous | yes | UNAUTHENTICATED | UNAUTHENTICATED |
//! | customer | yes | FORBIDDEN | its own; anyone else's looks missing |
//! | staff | yes | yes | all |
//!
//! "Looks missing" is exact: another customer's account or order answers what an id that exists nowhere answers,
//! so ids cannot be probed.

use std::sync::Arc;

use shop_events::TraceContext;
use shop_platform::{
    grpc::traced_request,
    identity::{Identity, attach_identity},
};
use tokio::sync::OnceCell;
use tonic::Request;

use super::CallError;
use crate::auth::Caller;

/// One request's trace and caller, shared by every service call it makes. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Call {
    trace: TraceContext,
    caller: Caller,
    /// The ids of the accounts a customer owns, looked up once per request when a rule needs them.
    owned_accounts: Arc<OnceCell<Vec<String>>>,
}

impl Call {
    pub fn new(trace: TraceContext, caller: Caller) -> Self {
        Self { trace, caller, owned_accounts: Arc::default() }
    }

    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// A request carrying `message`, the trace and, for a signed-in caller, its identity (which the services use
    /// for defence in depth and to record owners).
    pub(super) fn request<T>(&self, message: T) -> Result<Request<T>, CallError> {
        let mut request = traced_request(message, &self.trace);
        if let Caller::Authenticated(identity) = &self.caller {
            // The token's subject was checked to be sendable when the token was verified.
            attach_identity(&mut request, identity).map_err(|_| CallError::Internal)?;
        }
        Ok(request)
    }

    /// Succeeds for any caller allowed to see accounts and orders at all, with its identity when it has one.
    pub(super) fn signed_in(&self) -> Result<Option<&Identity>, CallError> {
        match &self.caller {
            Caller::Unrestricted => Ok(None),
            Caller::Anonymous => Err(CallError::Unauthenticated),
            Caller::Authenticated(identity) => Ok(Some(identity)),
        }
    }

    /// The caller, when what it may see is limited to what it owns.
    pub(super) fn customer(&self) -> Result<Option<&Identity>, CallError> {
        Ok(self.signed_in()?.filter(|identity| !identity.is_staff()))
    }

    /// Succeeds for staff (and when authentication is disabled).
    pub(super) fn require_staff(&self) -> Result<(), CallError> {
        match self.signed_in()? {
            Some(identity) if !identity.is_staff() => Err(CallError::Forbidden),
            _ => Ok(()),
        }
    }

    /// The accounts a customer owns, from `look_up` the first time a request needs them.
    pub(super) async fn owned_accounts<F, Fut>(&self, look_up: F) -> Result<&[String], CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<String>, CallError>>,
    {
        self.owned_accounts.get_or_try_init(look_up).await.map(Vec::as_slice)
    }
}
