//! `skip`/`take` pagination shared by every list call, with an `after` cursor for pages deeper than `skip` may go.

use uuid::Uuid;

use crate::{FieldViolation, ids::parse_id};

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip; fits a Postgres `OFFSET`.
    pub skip: i64,
    /// Rows to return, between 1 and [`Page::MAX_TAKE`].
    pub take: i64,
    /// Only rows after this id in the listing's order (the last id of the previous page): a cursor reads any
    /// depth from the index, where `skip` walks every skipped row.
    pub after: Option<Uuid>,
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
        Ok(Self { skip, take: take.into(), after: None })
    }

    /// Like [`parse`](Self::parse), with a cursor: `after` is an id, or empty for none.
    pub fn parse_after(skip: u64, take: u32, after: &str) -> Result<Self, Vec<FieldViolation>> {
        let page = Self::parse(skip, take);
        let after =
            Some(after.trim()).filter(|after| !after.is_empty()).map(|after| parse_id("after", after));
        match (page, after.transpose()) {
            (Ok(page), Ok(after)) => Ok(Self { after, ..page }),
            (page, after) => Err(page.err().into_iter().chain(after.err()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_an_id_or_nothing() {
        let id = Uuid::now_v7();

        assert_eq!(Page::parse_after(0, 10, &id.to_string()).unwrap().after, Some(id));
        assert_eq!(Page::parse_after(0, 10, " ").unwrap().after, None);
        let problems = Page::parse_after(0, 101, "nope").unwrap_err();
        assert_eq!(problems.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["take", "after"]);
    }

    #[test]
    fn zero_take_means_the_default_page_size() {
        assert_eq!(Page::parse(5, 0), Ok(Page { skip: 5, take: 20, after: None }));
    }

    #[test]
    fn take_above_the_maximum_is_rejected() {
        assert_eq!(Page::parse(0, 100), Ok(Page { skip: 0, take: 100, after: None }));
        assert_eq!(Page::parse(0, 101).unwrap_err().field, "take");
    }

    #[test]
    fn skip_beyond_the_maximum_is_rejected() {
        assert_eq!(Page::parse(Page::MAX_SKIP, 100), Ok(Page { skip: 9_900, take: 100, after: None }));
        assert_eq!(Page::parse(Page::MAX_SKIP + 1, 10).unwrap_err().field, "skip");
        assert_eq!(Page::parse(u64::MAX, 10).unwrap_err().field, "skip");
    }
}
