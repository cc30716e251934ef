//! What an apply would change: the database against the last applied state.

use std::collections::BTreeMap;

use crate::store::applies::Changes;

/// Extensions added, removed, or whose rendered sections differ (a rotated secret, a
/// renamed user, another transport).
pub fn diff(current: &BTreeMap<u32, Vec<u8>>, applied: &BTreeMap<u32, Vec<u8>>) -> Changes {
    let mut c = Changes::default();
    for (ext, print) in current {
        match applied.get(ext) {
            None => c.added.push(*ext),
            Some(old) if old != print => c.changed.push(*ext),
            Some(_) => {}
        }
    }
    c.removed = applied.keys().filter(|e| !current.contains_key(e)).copied().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_added_removed_and_changed() {
        let applied = BTreeMap::from([(1000, vec![1]), (1001, vec![2]), (1002, vec![3])]);
        let current = BTreeMap::from([(1000, vec![1]), (1001, vec![9]), (1003, vec![4])]);
        let c = diff(&current, &applied);
        assert_eq!((c.added, c.removed, c.changed), (vec![1003], vec![1002], vec![1001]));
        assert!(diff(&applied, &applied).is_empty());
    }
}
