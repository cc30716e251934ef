//! What an apply would change: the database against the last applied state.

use std::collections::BTreeMap;

use crate::asterisk::render::Fingerprint;
use crate::store::applies::Changes;

/// Extensions added, removed, or whose rendered sections differ (a rotated secret, a
/// renamed user, another transport).
pub fn diff(current: &BTreeMap<u32, Fingerprint>, applied: &BTreeMap<u32, Fingerprint>) -> Changes {
    let mut c = Changes::default();
    for (ext, print) in current {
        match applied.get(ext) {
            None => c.added.push(*ext),
            Some(old) if old != print => c.changed.push(*ext),
            Some(_) => {}
        }
    }
    c.removed = applied
        .keys()
        .filter(|e| !current.contains_key(e))
        .copied()
        .collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_added_removed_and_changed() {
        let f = |b: u8| [b; 32];
        let applied = BTreeMap::from([(1000, f(1)), (1001, f(2)), (1002, f(3))]);
        let current = BTreeMap::from([(1000, f(1)), (1001, f(9)), (1003, f(4))]);
        let c = diff(&current, &applied);
        assert_eq!(
            (c.added, c.removed, c.changed),
            (vec![1003], vec![1002], vec![1001])
        );
        assert!(diff(&applied, &applied).is_empty());
    }
}
