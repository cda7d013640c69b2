//! "Did you mean" suggestions for misspelled keys and values.

/// The candidate closest to `got` (case-insensitive edit distance at most 2, or a
/// case-only difference), if any.
pub fn did_you_mean<'a>(got: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let g = got.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&g, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2.min(g.len().max(1)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `X`? ` for the closest candidate, or nothing: the start of a message's hint.
pub fn hint(got: &str, candidates: &[&str]) -> String {
    did_you_mean(got, candidates).map_or_else(String::new, |s| format!("did you mean `{s}`? "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("sise", &["name", "size"]), Some("size"));
        assert_eq!(did_you_mean("LRU", &["lru", "none"]), Some("lru"));
        assert_eq!(did_you_mean("colour", &["name", "size"]), None);
        assert_eq!(did_you_mean("pool", &["pools"]), Some("pools"));
        assert_eq!(hint("nmae", &["name"]), "did you mean `name`? ");
        assert_eq!(hint("colour", &["name"]), "");
    }
}
