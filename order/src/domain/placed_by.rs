/// Who placed an order, as far as it limits the account the order may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PlacedBy {
    /// Staff, or a caller with no end user behind it (the gateway without authentication, a tool, a test): any
    /// account.
    #[default]
    Unrestricted,
    /// A customer, by the subject of their identity: only the account that subject owns.
    Customer(String),
}

impl PlacedBy {
    /// As stored: the customer's subject, or nothing for an unrestricted order.
    pub fn from_customer(customer: Option<String>) -> Self {
        customer.map_or(Self::Unrestricted, Self::Customer)
    }

    /// The customer's subject, if a customer placed the order.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Self::Unrestricted => None,
            Self::Customer(subject) => Some(subject),
        }
    }

    /// Whether an order placed so may name an account owned by `owner` (`None`: an account nobody owns, which
    /// no customer may name).
    pub fn may_order_for(&self, owner: Option<&str>) -> bool {
        match self {
            Self::Unrestricted => true,
            Self::Customer(subject) => owner == Some(subject.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_may_order_only_for_their_own_account_and_the_unrestricted_for_any() {
        let ada = PlacedBy::Customer("auth0|ada".into());

        assert!(ada.may_order_for(Some("auth0|ada")));
        assert!(!ada.may_order_for(Some("auth0|grace")));
        assert!(!ada.may_order_for(None), "an unowned account is nobody's");
        assert!(PlacedBy::Unrestricted.may_order_for(Some("auth0|grace")));
        assert!(PlacedBy::Unrestricted.may_order_for(None));
    }

    #[test]
    fn who_placed_an_order_reads_back_from_what_is_stored() {
        for placed_by in [PlacedBy::Unrestricted, PlacedBy::Customer("auth0|ada".into())] {
            assert_eq!(PlacedBy::from_customer(placed_by.customer().map(Into::into)), placed_by);
        }
    }
}
