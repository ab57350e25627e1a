//! The resources the REST API exchanges, and their conversions from the services' protobuf messages.
//!
//! An answer has the same shape as the entity in the events on the topics (`shop.accounts.v1`,
//! `shop.products.v1`, `shop.orders.v1`): snake_case names, money in integer cents, ids as UUID strings, RFC 3339
//! timestamps, order statuses in lower case. A client can keep one model for what it reads here and what it
//! consumes from Kafka (a test compares the two schemas). Request bodies refuse unknown fields, so a typo (`price`
//! for `price_cents`) is an error, not a silently ignored field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shop_platform::ids::from_timestamp;
use shop_proto::{account::v1 as account, catalog::v1 as catalog, order::v1 as order};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::Problem;

/// A customer account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    /// 1 on creation, one more on every change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    /// The subject of the identity that opened the account, which alone (with staff) may see it and order for
    /// it; absent for accounts opened while authentication was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// What opening an account takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Required; trimmed; then at most 100 characters, none of them a control character.
    #[schema(example = "Ada Lovelace", min_length = 1)]
    pub name: String,
}

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Units available to order; absent when the product does not track its stock (it is then never short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub stock: Option<i64>,
    /// 1 on creation, one more on every update (stock moving included); pass it as `expected_version` to update
    /// safely.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A product's fields, to add it to the catalog.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Required; trimmed; then at most 200 characters, none of them a control character.
    #[schema(example = "Kettle", min_length = 1)]
    pub name: String,
    /// Trimmed; then at most 5 000 characters, no control character but line breaks and tabs; empty when absent.
    #[serde(default)]
    #[schema(example = "1.7 litres, stainless steel")]
    pub description: String,
    /// Price in cents, from zero to ten million units of currency.
    #[schema(example = 2499, minimum = 0, maximum = 1_000_000_000)]
    pub price_cents: i64,
    /// Units in stock, zero or more: the product then tracks its stock, for good. Absent, it never does (it is
    /// never short). Only at creation; `POST /product/{id}/stock` changes it later.
    #[serde(default)]
    #[schema(example = 12, minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
}

/// A product's new fields, replacing all of them.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdate {
    /// Required; trimmed; then at most 200 characters, none of them a control character.
    #[schema(example = "Kettle", min_length = 1)]
    pub name: String,
    /// Trimmed; then at most 5 000 characters, no control character but line breaks and tabs; empty when absent.
    #[serde(default)]
    pub description: String,
    /// Price in cents, from zero to ten million units of currency.
    #[schema(example = 2199, minimum = 0, maximum = 1_000_000_000)]
    pub price_cents: i64,
    /// The version the change is based on: when the product is no longer at it, nothing changes and the answer
    /// is 409. Absent: the change applies whatever the version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// A change of a product's stock.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustment {
    /// Units to add (a restock) or, when negative, to take away (a write-off); not zero, at most 10⁹ either way.
    #[serde(deserialize_with = "integral")]
    #[schema(schema_with = stock_delta, example = 24)]
    pub delta: i64,
    /// The version the change is based on: when the product is no longer at it (orders reserving stock move it
    /// too), nothing changes and the answer is 409. Absent: the change applies whatever the version.
    #[serde(default, deserialize_with = "optional_integral")]
    pub expected_version: Option<i64>,
}

/// An integer as JSON Schema counts one: `161`, or `161.0` (a number without a fraction). The document's
/// `oneOf` ranges allow both, and clients generating requests from it send either.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    // Below 2⁵³ a float holds every integer exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match (number.as_i64(), number.as_f64()) {
        (Some(integer), _) => Ok(integer),
        (None, Some(float)) if float.fract() == 0.0 && float.abs() < EXACT => Ok(float as i64),
        _ => Err(D::Error::custom(format!("invalid type: {number}, expected an integer"))),
    }
}

/// [`integral`], for an optional field (absent or null: `None`).
fn optional_integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Integral(#[serde(deserialize_with = "integral")] i64);
    Ok(Option::<Integral>::deserialize(deserializer)?.map(|Integral(integer)| integer))
}

/// The schema of a [`StockAdjustment::delta`]: an integer from -10⁹ to 10⁹ that is not zero, written as one of two
/// ranges so that clients (and contract testers) generating requests from the document never send a zero.
fn stock_delta() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
    const MAX: i64 = 1_000_000_000;
    let range = |minimum: i64, maximum: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(minimum))
            .maximum(Some(maximum))
            .build()
    };
    Schema::OneOf(
        OneOfBuilder::new()
            .item(range(-MAX, -1))
            .item(range(1, MAX))
            .description(Some(
                "Units to add (a restock) or, when negative, to take away (a write-off); not zero.",
            ))
            .build(),
    )
}

/// Where an order is in its life: placed orders wait as `pending` until validated; an order naming a product that
/// tracks its stock then waits as `awaiting_stock` (priced) for the catalog to reserve it; it ends `confirmed`
/// (priced, its stock held), `rejected` (with a reason) or `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    AwaitingStock,
    Confirmed,
    Rejected,
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

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub account_id: Uuid,
    pub status: OrderStatus,
    /// One line per product (repeated products are merged when the order is placed).
    pub lines: Vec<OrderLine>,
    /// Sum of unit price times quantity over the lines, in cents; null until the order is priced.
    pub total_price_cents: Option<i64>,
    /// Why the order was rejected; null unless it was.
    pub rejection_reason: Option<String>,
    /// 1 when placed, one more on every transition.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every step of the order's saga so far, oldest first.
    #[serde(default)]
    pub history: Vec<OrderStep>,
    /// True while the order is rejected or cancelled after stock was asked for, and the catalog has not yet given
    /// back what it may hold for it: the compensation still to complete.
    #[serde(default)]
    pub stock_release_pending: bool,
}

/// One step of an order's saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderStep {
    pub step: OrderStepKind,
    pub at: DateTime<Utc>,
    /// What the step came to, in words: why an order was rejected or cancelled, what was short of stock.
    pub detail: Option<String>,
}

/// The steps an order's saga takes: `placed`; `awaiting_stock` (validated and priced, the catalog asked to reserve
/// its stock); `stock_reserved` or `stock_rejected` (the catalog's answer); `confirmed`, `rejected` or `cancelled`;
/// `stock_released` (what the catalog held, if anything, went back to stock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStepKind {
    Placed,
    AwaitingStock,
    StockReserved,
    StockRejected,
    Confirmed,
    Rejected,
    Cancelled,
    StockReleased,
}

/// A product and a quantity within an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: u32,
    /// The product as it was when the order was priced; null until then.
    pub product: Option<PricedProduct>,
}

/// A product's name, description and unit price, frozen when the order was priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricedProduct {
    pub name: String,
    pub description: String,
    pub unit_price_cents: i64,
}

/// What placing an order takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub account_id: Uuid,
    /// At least one line, at most 1 000; repeated products are merged, into at most 100 different products of at
    /// most 10 000 each.
    #[schema(min_items = 1, max_items = 1000)]
    pub lines: Vec<NewOrderLine>,
}

/// A product and how many of it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderLine {
    pub product_id: Uuid,
    /// 1 to 10 000.
    #[schema(example = 1, minimum = 1, maximum = 10_000)]
    pub quantity: u32,
}

/// An id a service sent, which must be a UUID.
fn id(id: &str, what: &str) -> Result<Uuid, Problem> {
    Uuid::try_parse(id).map_err(|_| malformed(what))
}

/// A timestamp a service sent, which must be there and valid.
fn timestamp(at: Option<prost_types::Timestamp>, what: &str) -> Result<DateTime<Utc>, Problem> {
    at.as_ref().and_then(from_timestamp).ok_or_else(|| malformed(what))
}

fn malformed(what: &str) -> Problem {
    tracing::error!(what, "A service answered a malformed value.");
    Problem::internal()
}

impl TryFrom<account::Account> for Account {
    type Error = Problem;

    fn try_from(account: account::Account) -> Result<Self, Problem> {
        Ok(Self {
            id: id(&account.id, "account.id")?,
            name: account.name,
            version: account.version,
            created_at: timestamp(account.created_at, "account.created_at")?,
            owner: account.owner,
        })
    }
}

impl TryFrom<catalog::Product> for Product {
    type Error = Problem;

    fn try_from(product: catalog::Product) -> Result<Self, Problem> {
        Ok(Self {
            id: id(&product.id, "product.id")?,
            name: product.name,
            description: product.description,
            price_cents: product.price_cents,
            stock: product.stock,
            version: product.version,
            created_at: timestamp(product.created_at, "product.created_at")?,
            updated_at: timestamp(product.updated_at, "product.updated_at")?,
        })
    }
}

impl TryFrom<order::Order> for Order {
    type Error = Problem;

    fn try_from(order: order::Order) -> Result<Self, Problem> {
        let status = match order.status() {
            order::OrderStatus::Pending => OrderStatus::Pending,
            order::OrderStatus::AwaitingStock => OrderStatus::AwaitingStock,
            order::OrderStatus::Confirmed => OrderStatus::Confirmed,
            order::OrderStatus::Rejected => OrderStatus::Rejected,
            order::OrderStatus::Cancelled => OrderStatus::Cancelled,
            order::OrderStatus::Unspecified => return Err(malformed("order.status")),
        };
        let history = order.history.into_iter().map(OrderStep::try_from).collect::<Result<_, Problem>>()?;
        let lines = order
            .lines
            .into_iter()
            .map(|line| {
                Ok(OrderLine {
                    product_id: id(&line.product_id, "order.lines.product_id")?,
                    quantity: line.quantity,
                    product: line.product.map(|product| PricedProduct {
                        name: product.name,
                        description: product.description,
                        unit_price_cents: product.unit_price_cents,
                    }),
                })
            })
            .collect::<Result<_, Problem>>()?;
        Ok(Self {
            id: id(&order.id, "order.id")?,
            account_id: id(&order.account_id, "order.account_id")?,
            status,
            lines,
            total_price_cents: order.total_price_cents,
            rejection_reason: Some(order.rejection_reason).filter(|reason| !reason.is_empty()),
            version: order.version,
            created_at: timestamp(order.created_at, "order.created_at")?,
            updated_at: timestamp(order.updated_at, "order.updated_at")?,
            history,
            stock_release_pending: order.stock_release_pending,
        })
    }
}

impl TryFrom<order::OrderStep> for OrderStep {
    type Error = Problem;

    fn try_from(step: order::OrderStep) -> Result<Self, Problem> {
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
            Kind::Unspecified => return Err(malformed("order.history.kind")),
        };
        Ok(Self {
            step: kind,
            at: timestamp(step.at, "order.history.at")?,
            detail: Some(step.detail).filter(|detail| !detail.is_empty()),
        })
    }
}
