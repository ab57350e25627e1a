//! `skip`/`take` pagination shared by every list call.

use crate::FieldViolation;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip; fits a Postgres `OFFSET`.
    pub skip: i64,
    /// Rows to return, between 1 and [`Page::MAX_TAKE`].
    pub take: i64,
}

impl Page {
    /// The page size when the caller asks for none (`take = 0`).
    pub const DEFAULT_TAKE: u32 = 20;
    /// The largest page a caller may ask for.
    pub const MAX_TAKE: u32 = 100;

    /// Validates `skip` and `take` as they arrive in a request; `take = 0` means the default page size.
    pub fn parse(skip: u64, take: u32) -> Result<Self, FieldViolation> {
        let skip = i64::try_from(skip).map_err(|_| FieldViolation::new("skip", "is too large"))?;
        let take = match take {
            0 => Self::DEFAULT_TAKE,
            take if take > Self::MAX_TAKE => {
                return Err(FieldViolation::new("take", format!("must be at most {}", Self::MAX_TAKE)));
            }
            take => take,
        };
        Ok(Self { skip, take: take.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_take_means_the_default_page_size() {
        assert_eq!(Page::parse(5, 0), Ok(Page { skip: 5, take: 20 }));
    }

    #[test]
    fn take_above_the_maximum_is_rejected() {
        assert_eq!(Page::parse(0, 100), Ok(Page { skip: 0, take: 100 }));
        assert_eq!(Page::parse(0, 101).unwrap_err().field, "take");
    }

    #[test]
    fn skip_beyond_an_sql_offset_is_rejected() {
        assert_eq!(Page::parse(u64::MAX, 10).unwrap_err().field, "skip");
    }
}
