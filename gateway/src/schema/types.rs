//! The GraphQL object types and their conversions from the services' protobuf messages. Money is presented in
//! currency units (`Float`), as the original schema did; the services keep integer cents.

use async_graphql::{ComplexObject, Context, Enum, ID, Result, SimpleObject, dataloader::DataLoader};
use chrono::{DateTime, Utc};
use shop_events::order as events;
use shop_platform::ids::from_timestamp;
use shop_proto::{account::v1 as account, catalog::v1 as catalog, order::v1 as order};

use super::{
    errors::ErrorCode,
    inputs::PaginationInput,
    limits,
    loaders::{AccountOrders, OrdersByAccount},
};

/// Cents as currency units.
fn units(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn timestamp(at: Option<prost_types::Timestamp>, what: &str) -> Result<DateTime<Utc>> {
    at.as_ref().and_then(from_timestamp).ok_or_else(|| {
        tracing::error!(what, "A service answered without a valid timestamp.");
        ErrorCode::Internal.error("internal error")
    })
}

/// A customer account.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Account {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The subject of the identity that opened the account (null for accounts opened while authentication was
    /// disabled). Only its owner and staff see an account.
    pub owner: Option<String>,
}

#[ComplexObject]
impl Account {
    /// A page of the account's orders, newest first (20 unless `pagination` says otherwise). Loaded in one call
    /// for every account in the response. Costs `take` times the cost of one order.
    #[graphql(complexity = "limits::list_cost(pagination.as_ref(), false, child_complexity)")]
    async fn orders(&self, ctx: &Context<'_>, pagination: Option<PaginationInput>) -> Result<Vec<Order>> {
        let page = PaginationInput::validate(pagination)?;
        let loader = ctx.data::<DataLoader<OrdersByAccount>>()?;
        let key = AccountOrders { account_id: self.id.to_string(), page };
        Ok(loader.load_one(key).await?.unwrap_or_default())
    }
}

impl TryFrom<account::Account> for Account {
    type Error = async_graphql::Error;

    fn try_from(account: account::Account) -> Result<Self> {
        Ok(Self {
            created_at: timestamp(account.created_at, "account.created_at")?,
            id: account.id.into(),
            name: account.name,
            owner: account.owner,
        })
    }
}

/// A product of the catalog.
#[derive(Debug, Clone, SimpleObject)]
pub struct Product {
    pub id: ID,
    pub name: String,
    pub description: String,
    /// Price in currency units (two decimals).
    pub price: f64,
    /// Units available to order; null when the product does not track its stock (it is then never short).
    pub stock: Option<i64>,
    /// Incremented on every change (stock moving included); pass it as `expectedVersion` to update safely.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<catalog::Product> for Product {
    type Error = async_graphql::Error;

    fn try_from(product: catalog::Product) -> Result<Self> {
        Ok(Self {
            created_at: timestamp(product.created_at, "product.created_at")?,
            updated_at: timestamp(product.updated_at, "product.updated_at")?,
            id: product.id.into(),
            name: product.name,
            description: product.description,
            price: units(product.price_cents),
            stock: product.stock,
            version: product.version,
        })
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum OrderStatus {
    /// Placed, waiting for validation.
    Pending,
    /// Validated and priced; waiting for the catalog to reserve its stock.
    AwaitingStock,
    /// Validated and priced, its stock reserved.
    Confirmed,
    /// Refused; `rejectionReason` says why.
    Rejected,
    /// Cancelled before it was final.
    Cancelled,
}

impl OrderStatus {
    /// Whether the order's status can change no more.
    pub fn is_final(self) -> bool {
        match self {
            Self::Pending | Self::AwaitingStock => false,
            Self::Confirmed | Self::Rejected | Self::Cancelled => true,
        }
    }
}

/// The steps of an order's saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum OrderStepKind {
    /// Stored, waiting for validation.
    Placed,
    /// Validated and priced; the catalog was asked to reserve its stock.
    AwaitingStock,
    /// The catalog holds every line.
    StockReserved,
    /// The catalog could not hold every line, so holds none; `detail` says what was short.
    StockRejected,
    Confirmed,
    /// `detail` says why.
    Rejected,
    Cancelled,
    /// What the catalog held for the order (if anything) went back to stock.
    StockReleased,
}

/// One step of an order's saga.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct OrderStep {
    pub kind: OrderStepKind,
    /// When the order took the step.
    pub at: Option<DateTime<Utc>>,
    /// What the step came to, in words (why an order was rejected, what was short of stock); null when there is
    /// nothing to say.
    pub detail: Option<String>,
}

/// An order.
#[derive(Debug, Clone, SimpleObject)]
pub struct Order {
    pub id: ID,
    pub account_id: ID,
    pub created_at: DateTime<Utc>,
    /// When the order last changed (its status, its prices).
    pub updated_at: DateTime<Utc>,
    /// 1 when placed, one more on every change: a client that saw version `n` has seen every change up to it.
    pub version: i64,
    pub status: OrderStatus,
    /// Sum of price times quantity over the products, in currency units; null until the order is priced.
    pub total_price: Option<f64>,
    /// Why the order was rejected; null unless it was.
    pub rejection_reason: Option<String>,
    /// The order's lines (at most 100). They come with the order, so they cost as one item.
    pub products: Vec<OrderedProduct>,
    /// Every step of the order's saga so far, oldest first. It comes with the order, so it costs as one item.
    pub history: Vec<OrderStep>,
    /// True while the order is rejected or cancelled after stock was asked for, and the catalog has not yet given
    /// back what it may hold for it: the compensation still to complete.
    pub stock_release_pending: bool,
}

impl Order {
    /// Whether the order can change no more: a final status, and nothing left to give back to stock.
    pub fn is_settled(&self) -> bool {
        self.status.is_final() && !self.stock_release_pending
    }
}

/// A product within an order, as it was when the order was priced.
#[derive(Debug, Clone, SimpleObject)]
pub struct OrderedProduct {
    pub id: ID,
    /// Null until the order is priced.
    pub name: Option<String>,
    /// Null until the order is priced.
    pub description: Option<String>,
    /// Unit price in currency units; null until the order is priced.
    pub price: Option<f64>,
    pub quantity: i32,
}

impl TryFrom<order::Order> for Order {
    type Error = async_graphql::Error;

    fn try_from(order: order::Order) -> Result<Self> {
        let status = match order.status() {
            order::OrderStatus::Pending => OrderStatus::Pending,
            order::OrderStatus::AwaitingStock => OrderStatus::AwaitingStock,
            order::OrderStatus::Confirmed => OrderStatus::Confirmed,
            order::OrderStatus::Rejected => OrderStatus::Rejected,
            order::OrderStatus::Cancelled => OrderStatus::Cancelled,
            order::OrderStatus::Unspecified => {
                tracing::error!(order_id = %order.id, "The order service answered an order without a status.");
                return Err(ErrorCode::Internal.error("internal error"));
            }
        };
        let history = order.history.into_iter().map(OrderStep::try_from).collect::<Result<_>>()?;
        Ok(Self {
            created_at: timestamp(order.created_at, "order.created_at")?,
            updated_at: timestamp(order.updated_at, "order.updated_at")?,
            version: order.version,
            id: order.id.into(),
            account_id: order.account_id.into(),
            status,
            total_price: order.total_price_cents.map(units),
            rejection_reason: Some(order.rejection_reason).filter(|reason| !reason.is_empty()),
            products: order
                .lines
                .into_iter()
                .map(|line| {
                    let (name, description, price) = match line.product {
                        Some(p) => (Some(p.name), Some(p.description), Some(units(p.unit_price_cents))),
                        None => (None, None, None),
                    };
                    OrderedProduct {
                        id: line.product_id.into(),
                        name,
                        description,
                        price,
                        // At most 10 000 per line (the order service's limit).
                        quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
                    }
                })
                .collect(),
            history,
            stock_release_pending: order.stock_release_pending,
        })
    }
}

impl TryFrom<order::OrderStep> for OrderStep {
    type Error = async_graphql::Error;

    fn try_from(step: order::OrderStep) -> Result<Self> {
        use order::order_step::Kind;
        let kind = match step.kind() {
            Kind::Placed => OrderStepKind::Placed,
            Kind::AwaitingStock => OrderStepKind::AwaitingStock,
            Kind::StockReserved => OrderStepKind::StockReserved,
            Kind::StockRejected => OrderStepKind::StockRejected,
            Kind::Confirmed => OrderStepKind::Confirmed,
            Kind::Rejected => OrderStepKind::Rejected,
            Kind::Cancelled => OrderStepKind::Cancelled,
            Kind::StockReleased => OrderStepKind::StockReleased,
            Kind::Unspecified => {
                tracing::error!("The order service answered a step of an order's saga without its kind.");
                return Err(ErrorCode::Internal.error("internal error"));
            }
        };
        Ok(Self {
            kind,
            at: step.at.as_ref().and_then(from_timestamp),
            detail: Some(step.detail).filter(|detail| !detail.is_empty()),
        })
    }
}

/// An order as the order topic carries it (subscriptions are fed from there).
impl From<&events::Order> for Order {
    fn from(order: &events::Order) -> Self {
        Self {
            id: ID(order.id.to_string()),
            account_id: ID(order.account_id.to_string()),
            created_at: order.created_at,
            updated_at: order.updated_at,
            version: order.version,
            status: match order.status {
                events::OrderStatus::Pending => OrderStatus::Pending,
                events::OrderStatus::AwaitingStock => OrderStatus::AwaitingStock,
                events::OrderStatus::Confirmed => OrderStatus::Confirmed,
                events::OrderStatus::Rejected => OrderStatus::Rejected,
                events::OrderStatus::Cancelled => OrderStatus::Cancelled,
            },
            total_price: order.total_price_cents.map(units),
            rejection_reason: order.rejection_reason.clone(),
            products: order
                .lines
                .iter()
                .map(|line| OrderedProduct {
                    id: ID(line.product_id.to_string()),
                    name: line.product.as_ref().map(|p| p.name.clone()),
                    description: line.product.as_ref().map(|p| p.description.clone()),
                    price: line.product.as_ref().map(|p| units(p.unit_price_cents)),
                    quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
                })
                .collect(),
            history: order.history.iter().map(OrderStep::from).collect(),
            stock_release_pending: order.stock_release_pending,
        }
    }
}

impl From<&events::OrderStep> for OrderStep {
    fn from(step: &events::OrderStep) -> Self {
        Self {
            kind: match step.step {
                events::OrderStepKind::Placed => OrderStepKind::Placed,
                events::OrderStepKind::AwaitingStock => OrderStepKind::AwaitingStock,
                events::OrderStepKind::StockReserved => OrderStepKind::StockReserved,
                events::OrderStepKind::StockRejected => OrderStepKind::StockRejected,
                events::OrderStepKind::Confirmed => OrderStepKind::Confirmed,
                events::OrderStepKind::Rejected => OrderStepKind::Rejected,
                events::OrderStepKind::Cancelled => OrderStepKind::Cancelled,
                events::OrderStepKind::StockReleased => OrderStepKind::StockReleased,
            },
            at: Some(step.at),
            detail: step.detail.clone(),
        }
    }
}
