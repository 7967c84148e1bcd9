//! Records kept in a `Vec` sorted by id (new ids only grow, so a page is a slice): every
//! simulator keeps its users this way, and Jama its groups too. Finding one is a binary
//! search, written once here.

/// A record in a list sorted by its id.
pub(crate) trait ById {
    /// The id type (`u64`; Jama's ids are `u32`).
    type Id: Ord + Copy;

    /// The id the list is sorted by.
    fn id(&self) -> Self::Id;
}

/// Where the record with `id` is in `records` (`Ok`), or where it would go (`Err`).
pub(crate) fn position<T: ById>(records: &[T], id: T::Id) -> Result<usize, usize> {
    records.binary_search_by_key(&id, T::id)
}

/// The record with `id`.
pub(crate) fn find<T: ById>(records: &[T], id: T::Id) -> Option<&T> {
    let index = position(records, id).ok()?;
    records.get(index)
}

/// The record with `id`, to change.
pub(crate) fn find_mut<T: ById>(records: &mut [T], id: T::Id) -> Option<&mut T> {
    let index = position(records, id).ok()?;
    records.get_mut(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Row(u32);

    impl ById for Row {
        type Id = u32;

        fn id(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn finds_by_id_and_says_where_a_new_one_goes() {
        let mut rows = vec![Row(2), Row(5), Row(9)];
        assert_eq!(position(&rows, 5), Ok(1));
        assert_eq!(position(&rows, 6), Err(2));
        assert_eq!(find(&rows, 9), Some(&Row(9)));
        assert_eq!(find(&rows, 3), None);
        if let Some(row) = find_mut(&mut rows, 2) {
            row.0 = 1;
        }
        assert_eq!(find(&rows, 1), Some(&Row(1)));
        assert!(find_mut(&mut rows, 4).is_none());
    }
}
