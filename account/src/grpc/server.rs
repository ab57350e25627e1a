//! `shop.account.v1.AccountService` over [`AccountService`]: protobuf in, domain types through, protobuf out.

use shop_platform::{
    ServiceError,
    grpc::trace_context,
    identity::identity_of,
    ids::{parse_id, to_timestamp},
    pagination::Page,
};
use shop_proto::account::v1::{
    self as proto,
    account_service_server::{self, AccountServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{Account, AccountName},
    service::AccountService,
};

/// The tonic service implementation.
#[derive(Debug, Clone)]
pub struct AccountGrpc {
    service: AccountService,
}

impl AccountGrpc {
    /// The server, ready to add to a tonic router.
    pub fn server(service: AccountService) -> AccountServiceServer<Self> {
        shop_platform::limit_message_sizes!(AccountServiceServer::new(Self { service }))
    }
}

impl From<Account> for proto::Account {
    fn from(account: Account) -> Self {
        Self {
            id: account.id.to_string(),
            name: account.name.as_str().to_owned(),
            created_at: Some(to_timestamp(account.created_at)),
            version: account.version,
            owner: account.owner,
        }
    }
}

#[tonic::async_trait]
impl account_service_server::AccountService for AccountGrpc {
    async fn post_account(
        &self,
        request: Request<proto::PostAccountRequest>,
    ) -> Result<Response<proto::PostAccountResponse>, Status> {
        let trace = trace_context(&request);
        // Whoever signs up owns the account, staff included: the identity is the account's, not a permission.
        let owner = identity_of(&request).map_err(ServiceError::from)?.map(|identity| identity.subject);
        let name = AccountName::parse("name", &request.get_ref().name).map_err(ServiceError::from)?;
        let account = self.service.open_account(name, owner, &trace).await?;
        Ok(Response::new(proto::PostAccountResponse { account: Some(account.into()) }))
    }

    async fn get_account(
        &self,
        request: Request<proto::GetAccountRequest>,
    ) -> Result<Response<proto::GetAccountResponse>, Status> {
        let id = parse_id("id", &request.get_ref().id).map_err(ServiceError::from)?;
        let account = self.service.account(id).await?;
        Ok(Response::new(proto::GetAccountResponse { account: Some(account.into()) }))
    }

    async fn get_accounts(
        &self,
        request: Request<proto::GetAccountsRequest>,
    ) -> Result<Response<proto::GetAccountsResponse>, Status> {
        let request = request.into_inner();
        let page =
            Page::parse_after(request.skip, request.take, &request.after).map_err(ServiceError::from)?;
        let owner = Some(request.owner.as_str()).filter(|owner| !owner.is_empty());
        let accounts = self.service.accounts(page, owner).await?;
        Ok(Response::new(proto::GetAccountsResponse {
            accounts: accounts.into_iter().map(Into::into).collect(),
        }))
    }
}
