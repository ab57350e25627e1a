//! The operations a load run sends, and the mix of them: a weight per operation, interleaved by a smooth weighted
//! round robin so that even a short run sends every operation in proportion.

use std::{
    fmt,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
};

use serde::Serialize;

/// One kind of request a shop's customers make through the GraphQL API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// `createAccount`: a new customer signs up (with `--auth dev`, under a subject of its own).
    SignUp,
    /// `products(pagination)`: a page of the catalog, following the `after` cursor page by page.
    Browse,
    /// `products(query)`: a full-text search for a word of a known product's name.
    Search,
    /// `createOrder`: 1 to 5 lines of known products, for a known customer.
    CreateOrder,
    /// `order(id)`: one of the customer's orders, by id.
    OrderById,
    /// `accounts(id) { orders }`: the customer's account with its latest orders.
    AccountOrders,
    /// `subscription orderUpdated(id)` over WebSocket: the customer's latest order followed until it settles.
    FollowOrder,
}

impl Operation {
    /// Every operation, in report order.
    pub const ALL: [Self; 7] = [
        Self::SignUp,
        Self::Browse,
        Self::Search,
        Self::CreateOrder,
        Self::OrderById,
        Self::AccountOrders,
        Self::FollowOrder,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::SignUp => "sign-up",
            Self::Browse => "browse",
            Self::Search => "search",
            Self::CreateOrder => "create-order",
            Self::OrderById => "order-by-id",
            Self::AccountOrders => "account-orders",
            Self::FollowOrder => "follow-order",
        }
    }

    /// The weight of the default mix: mostly browsing and searching, about one send in seven an order, a few
    /// look-ups of past orders, occasional sign-ups and live follow-ups.
    const fn default_weight(self) -> u32 {
        match self {
            Self::SignUp => 5,
            Self::Browse => 35,
            Self::Search => 20,
            Self::CreateOrder => 15,
            Self::OrderById => 10,
            Self::AccountOrders => 10,
            Self::FollowOrder => 5,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|operation| operation.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|operation| operation.name()).collect();
            format!("unknown operation `{name}`; the operations are {}", names.join(", "))
        })
    }
}

/// How often each operation is sent, relative to the others. 0 never sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; Operation::ALL.len()],
}

impl Default for Mix {
    fn default() -> Self {
        Self { weights: Operation::ALL.map(Operation::default_weight) }
    }
}

impl Mix {
    /// Only `operation`, as a benchmark of one call wants.
    pub fn only(operation: Operation) -> Self {
        let mut mix = Self { weights: [0; Operation::ALL.len()] };
        mix.set(operation, 1);
        mix
    }

    /// Changes the weight of `operation`.
    pub fn set(&mut self, operation: Operation, weight: u32) {
        self.weights[operation as usize] = weight;
    }

    /// The weight of `operation`.
    pub fn weight(&self, operation: Operation) -> u32 {
        self.weights[operation as usize]
    }

    /// The operations with a weight above 0, in report order.
    pub fn operations(&self) -> impl Iterator<Item = Operation> + '_ {
        Operation::ALL.into_iter().filter(|operation| self.weight(*operation) > 0)
    }

    /// A sampler of this mix; `None` when every weight is 0.
    pub(crate) fn sampler(&self) -> Option<Sampler> {
        let total = self.weights.iter().map(|weight| i64::from(*weight)).sum();
        (total > 0).then(|| Sampler {
            weights: self.weights,
            total,
            credits: Arc::new(Mutex::new([0; Operation::ALL.len()])),
        })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Operation::ALL
            .iter()
            .map(|operation| format!("{operation}={}", self.weight(*operation)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// `name=weight,…`: the default mix with the weights named changed (`follow-order=0` leaves subscriptions out).
impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut mix = Self::default();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| format!("`{part}` is not `operation=weight`"))?;
            let weight = weight
                .trim()
                .parse()
                .map_err(|_| format!("the weight of `{name}` must be a whole number"))?;
            mix.set(name.trim().parse()?, weight);
        }
        if mix.weights.iter().all(|weight| *weight == 0) {
            return Err("at least one operation needs a weight above 0".into());
        }
        Ok(mix)
    }
}

/// Picks operations in proportion to a mix's weights, shared by every client of a run.
///
/// A smooth weighted round robin (nginx's upstream algorithm): each pick credits every operation its weight and
/// sends the one with the most credit, which then pays the total back. Over any `total` consecutive picks each
/// operation is sent exactly `weight` times, spread out rather than in runs, so a run of a few seconds already
/// sends every operation of the mix — random sampling left one out now and then when slow operations held the
/// clients.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    weights: [u32; Operation::ALL.len()],
    total: i64,
    credits: Arc<Mutex<[i64; Operation::ALL.len()]>>,
}

impl Sampler {
    pub(crate) fn pick(&self) -> Operation {
        let mut credits = self.credits.lock().unwrap_or_else(PoisonError::into_inner);
        for (credit, weight) in credits.iter_mut().zip(self.weights) {
            *credit += i64::from(weight);
        }
        // The first of the richest on a tie, so that equal weights go in report order.
        let (chosen, _) = credits
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, credit)| **credit)
            .expect("a mix has operations");
        credits[chosen] -= self.total;
        Operation::ALL[chosen]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_changes_only_the_weights_it_names() {
        let mix: Mix = "create-order=50, follow-order=0".parse().unwrap();

        assert_eq!(mix.weight(Operation::CreateOrder), 50);
        assert_eq!(mix.weight(Operation::FollowOrder), 0);
        assert_eq!(mix.weight(Operation::Browse), Operation::Browse.default_weight());
        assert!(!mix.operations().any(|operation| operation == Operation::FollowOrder));
    }

    #[test]
    fn unknown_operations_and_all_zero_mixes_are_refused() {
        let unknown = "checkout=3".parse::<Mix>().unwrap_err();
        let none = Operation::ALL.map(|operation| format!("{operation}=0")).join(",").parse::<Mix>();

        assert!(unknown.contains("unknown operation `checkout`"), "{unknown}");
        assert!(none.is_err());
    }

    #[test]
    fn a_mix_of_one_operation_picks_only_it() {
        let sampler = Mix::only(Operation::CreateOrder).sampler().unwrap();

        assert!((0..100).all(|_| sampler.pick() == Operation::CreateOrder));
    }

    #[test]
    fn equal_weights_send_every_operation_once_per_round_in_report_order() {
        let mix: Mix = Operation::ALL.map(|operation| format!("{operation}=1")).join(",").parse().unwrap();
        let sampler = mix.sampler().unwrap();

        let picked: Vec<Operation> = (0..2 * Operation::ALL.len()).map(|_| sampler.pick()).collect();

        assert_eq!(picked, [Operation::ALL, Operation::ALL].concat());
    }

    #[test]
    fn every_round_of_the_total_weight_sends_each_operation_its_weight_spread_out() {
        let mix: Mix =
            "sign-up=1,browse=5,search=2,create-order=0,order-by-id=0,account-orders=0,follow-order=0"
                .parse()
                .unwrap();
        let sampler = mix.sampler().unwrap();

        let round: Vec<Operation> = (0..8).map(|_| sampler.pick()).collect();
        let count = |operation| round.iter().filter(|picked| **picked == operation).count();

        assert_eq!((count(Operation::SignUp), count(Operation::Browse), count(Operation::Search)), (1, 5, 2));
        assert!(
            round.windows(3).all(|three| three.iter().any(|picked| *picked != Operation::Browse)),
            "{round:?}"
        );
    }
}
