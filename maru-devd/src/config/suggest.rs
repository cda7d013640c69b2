//! "Did you mean" suggestions for misspelled keys and values.

/// The candidate closest to `got` (case-insensitive edit distance at most 2, or a
/// case-only difference), if any.
pub fn did_you_mean<'a>(got: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let g = got.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&g, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2.min(g.len().max(1)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `X`? ` for the closest candidate, or nothing: the start of a message's hint.
pub fn hint(got: &str, candidates: &[&str]) -> String {
    did_you_mean(got, candidates).map_or_else(String::new, |s| format!("did you mean `{s}`? "))
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("sise", &["name", "size"]), Some("size"));
        assert_eq!(did_you_mean("LRU", &["lru", "none"]), Some("lru"));
        assert_eq!(did_you_mean("colour", &["name", "size"]), None);
        assert_eq!(edit_distance("pool", "pools"), 1);
        assert_eq!(hint("nmae", &["name"]), "did you mean `name`? ");
        assert_eq!(hint("colour", &["name"]), "");
    }
}
