//! Applying a batch of entity versions as a set: one multi-row upsert per table instead of one statement per
//! record, with the same result and the same outcomes as applying the records one by one in order.
//!
//! A batch may hold several versions of one entity (a product updated five times), and a multi-row
//! `INSERT … ON CONFLICT DO UPDATE` may touch each row once only; [`VersionedBatch`] keeps the newest version of
//! each entity for the upsert, whose `WHERE stored.version < EXCLUDED.version` guard stays in SQL (so an older
//! version in a later batch, or a batch delivered again, changes nothing). Which records "changed the projection"
//! then follows from the versions stored before the statement: a record did if its version is newer than the
//! stored one and than every earlier record of its entity in the batch — exactly what the one-by-one application
//! reported.

use std::collections::{HashMap, hash_map::Entry};

use uuid::Uuid;

use crate::Outcome;

/// The versions of entities one batch carries, in the order the records came.
#[derive(Debug)]
pub struct VersionedBatch<T> {
    /// (index of the record in the batch, entity, version), in batch order.
    versions: Vec<(usize, Uuid, i64)>,
    /// Per entity, its newest version in the batch (the first of equal versions, as the one-by-one application
    /// keeps the first and ignores its repeats).
    newest: HashMap<Uuid, (i64, T)>,
}

impl<T> Default for VersionedBatch<T> {
    fn default() -> Self {
        Self { versions: Vec::new(), newest: HashMap::new() }
    }
}

impl<T> VersionedBatch<T> {
    /// Notes that record `index` of the batch carries `entity` (`id`) at `version`.
    pub fn push(&mut self, index: usize, id: Uuid, version: i64, entity: T) {
        self.versions.push((index, id, version));
        match self.newest.entry(id) {
            Entry::Occupied(mut newest) if newest.get().0 < version => {
                newest.insert((version, entity));
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(slot) => {
                slot.insert((version, entity));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The newest version of each entity with its id, ordered by id: what the upsert writes. (One order for every
    /// writer means two transactions upserting overlapping entities lock their rows in the same order.)
    pub fn newest(&self) -> Vec<(Uuid, &T)> {
        let mut newest: Vec<(Uuid, &T)> = self.newest.iter().map(|(id, (_, entity))| (*id, entity)).collect();
        newest.sort_unstable_by_key(|(id, _)| *id);
        newest
    }

    /// Sets `outcomes[index]` to [`Outcome::Applied`] for each record that changed the projection, given the
    /// versions stored before the batch (`stored`; an entity absent from it was not stored), and to
    /// [`Outcome::Ignored`] for the others: older or repeated versions.
    pub fn settle(&self, stored: &HashMap<Uuid, i64>, outcomes: &mut [Outcome]) {
        let mut current: HashMap<Uuid, i64> = HashMap::with_capacity(self.newest.len());
        for &(index, id, version) in &self.versions {
            let current = current.entry(id).or_insert_with(|| stored.get(&id).copied().unwrap_or(i64::MIN));
            outcomes[index] = if version > *current {
                *current = version;
                Outcome::Applied
            } else {
                Outcome::Ignored
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(versions: &[(Uuid, i64)]) -> VersionedBatch<String> {
        let mut batch = VersionedBatch::default();
        for (index, (id, version)) in versions.iter().enumerate() {
            batch.push(index, *id, *version, format!("{id} v{version} at {index}"));
        }
        batch
    }

    fn settled(batch: &VersionedBatch<String>, stored: &[(Uuid, i64)]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Skipped("not settled".into()); batch.versions.len()];
        batch.settle(&stored.iter().copied().collect(), &mut outcomes);
        outcomes
    }

    #[test]
    fn the_newest_version_of_each_entity_is_written_once() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());

        let batch = batch(&[(a, 1), (b, 3), (a, 3), (a, 2), (b, 3)]);

        assert_eq!(batch.newest(), [(a, &format!("{a} v3 at 2")), (b, &format!("{b} v3 at 1"))]);
    }

    #[test]
    fn outcomes_are_those_of_applying_the_records_one_by_one() {
        use Outcome::{Applied, Ignored};
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

        // a: new, then newer, a repeat, an older one, the newest. b: stored at 5, so 4 and 5 change nothing, 6
        // does. c: stored at 9, nothing newer.
        let batch = batch(&[(a, 1), (a, 2), (a, 2), (b, 4), (a, 1), (b, 5), (c, 7), (b, 6), (a, 3)]);

        assert_eq!(
            settled(&batch, &[(b, 5), (c, 9)]),
            [Applied, Applied, Ignored, Ignored, Ignored, Ignored, Ignored, Applied, Applied]
        );
    }
}
