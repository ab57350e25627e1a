//! A typed client for `shop.account.v1.AccountService`: plain arguments in, protobuf messages out.

use shop_platform::identity::{Identity, attach_identity};
use shop_proto::account::v1::{self as proto, account_service_client::AccountServiceClient};
use tonic::{Request, Status, transport::Channel};

/// Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct AccountClient {
    inner: AccountServiceClient<Channel>,
}

impl AccountClient {
    /// Connects to the service at `url` (`http://host:port`).
    pub async fn connect(url: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let inner = AccountServiceClient::connect(url.into()).await?;
        Ok(Self { inner: shop_platform::limit_message_sizes!(inner) })
    }

    pub fn new(channel: Channel) -> Self {
        Self { inner: shop_platform::limit_message_sizes!(AccountServiceClient::new(channel)) }
    }

    pub async fn post_account(&self, name: &str) -> Result<proto::Account, Status> {
        let request = proto::PostAccountRequest { name: name.to_owned() };
        let response = self.inner.clone().post_account(request).await?.into_inner();
        response.account.ok_or_else(|| Status::internal("the response carries no account"))
    }

    /// Creates an account as `identity` signing up, as the gateway calls for an authenticated caller: the
    /// identity's subject owns it.
    pub async fn post_account_as(&self, name: &str, identity: &Identity) -> Result<proto::Account, Status> {
        let mut request = Request::new(proto::PostAccountRequest { name: name.to_owned() });
        attach_identity(&mut request, identity)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let response = self.inner.clone().post_account(request).await?.into_inner();
        response.account.ok_or_else(|| Status::internal("the response carries no account"))
    }

    pub async fn get_account(&self, id: &str) -> Result<proto::Account, Status> {
        let request = proto::GetAccountRequest { id: id.to_owned() };
        let response = self.inner.clone().get_account(request).await?.into_inner();
        response.account.ok_or_else(|| Status::internal("the response carries no account"))
    }

    pub async fn get_accounts(&self, skip: u64, take: u32) -> Result<Vec<proto::Account>, Status> {
        let request = proto::GetAccountsRequest { skip, take, ..Default::default() };
        Ok(self.inner.clone().get_accounts(request).await?.into_inner().accounts)
    }

    /// The generated client, for calls that need request metadata.
    pub fn raw(&self) -> AccountServiceClient<Channel> {
        self.inner.clone()
    }
}
