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
    /// The most rows a caller may skip. Skipping is paid for: the database (or the search index) walks every
    /// skipped row, so deep pages are refused rather than served slowly; with the largest page, `skip + take` stays
    /// within 10 000, the deepest Elasticsearch pages by default (`index.max_result_window`).
    pub const MAX_SKIP: u64 = 10_000 - Self::MAX_TAKE as u64;

    /// Validates `skip` and `take` as they arrive in a request; `take = 0` means the default page size.
    pub fn parse(skip: u64, take: u32) -> Result<Self, FieldViolation> {
        if skip > Self::MAX_SKIP {
            return Err(FieldViolation::new("skip", format!("must be at most {}", Self::MAX_SKIP)));
        }
        let skip = i64::try_from(skip).expect("MAX_SKIP fits an i64");
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
    fn skip_beyond_the_maximum_is_rejected() {
        assert_eq!(Page::parse(Page::MAX_SKIP, 100), Ok(Page { skip: 9_900, take: 100 }));
        assert_eq!(Page::parse(Page::MAX_SKIP + 1, 10).unwrap_err().field, "skip");
        assert_eq!(Page::parse(u64::MAX, 10).unwrap_err().field, "skip");
    }
}
