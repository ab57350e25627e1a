use shop_platform::FieldViolation;

/// A customer's display name: trimmed, not blank, at most [`AccountName::MAX_CHARS`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub const MAX_CHARS: usize = 100;

    /// Validates a name as received; `field` names it in the violation.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldViolation::new(field, "must not be blank"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldViolation::new(field, "must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for AccountName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(AccountName::parse("name", "  Ada Lovelace \n").unwrap().as_str(), "Ada Lovelace");
    }

    #[test]
    fn a_blank_name_is_rejected() {
        for blank in ["", "   ", "\t\n"] {
            let violation = AccountName::parse("name", blank).unwrap_err();
            assert_eq!(violation, FieldViolation::new("name", "must not be blank"));
        }
    }

    #[test]
    fn a_name_of_the_maximum_length_is_accepted_and_one_more_is_rejected() {
        assert!(AccountName::parse("name", &"é".repeat(AccountName::MAX_CHARS)).is_ok());
        assert!(AccountName::parse("name", &"é".repeat(AccountName::MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(AccountName::parse("name", "Ada\u{0}Lovelace").is_err());
    }
}
