//! Byte sizes as the config writes them: `1073741824`, `512MiB`, `64GiB`, `100MB`, `25%`.

use super::suggest::did_you_mean;

/// A pool size before the node it draws from is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// An absolute number of bytes.
    Bytes(u64),
    /// A percentage (1..=100) of the source node's memory (MemTotal).
    Percent(u32),
}

/// Units a size may carry, with their multipliers.
const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// The hint every size error ends with.
pub const SIZE_HINT: &str =
    "write whole bytes (1073741824) or a number with a unit: B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000)";

/// Parses a byte count with an optional unit (no percentage). The error says what is wrong.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim_start();
    if digits.is_empty() {
        return Err(format!(
            "bad size `{text}`: it must start with a whole number; {SIZE_HINT}"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad size `{text}`: the number is too large for 64 bits"))?;
    let mult = if unit.is_empty() {
        1
    } else if let Some((_, m)) = UNITS.iter().find(|(u, _)| *u == unit) {
        *m
    } else {
        let names: Vec<&str> = UNITS.iter().map(|(u, _)| *u).collect();
        let hint = match did_you_mean(unit, &names) {
            Some(s) => format!(" (did you mean `{digits}{s}`?)"),
            None => String::new(),
        };
        return Err(format!(
            "bad size `{text}`: unknown unit `{unit}`{hint}; {SIZE_HINT}"
        ));
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("bad size `{text}`: more than 2^64 bytes"))
}

/// Parses a pool size: a byte count (see [`parse_bytes`]) or `NN%` of the node's memory.
pub fn parse_size(text: &str) -> Result<SizeSpec, String> {
    let t = text.trim();
    if let Some(pct) = t.strip_suffix('%') {
        return match pct.trim().parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(SizeSpec::Percent(p)),
            _ => Err(format!(
                "bad size `{text}`: a percentage must be a whole number from 1% to 100% of the node's memory"
            )),
        };
    }
    parse_bytes(t).map(SizeSpec::Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_percentages() {
        assert_eq!(parse_size("64GiB"), Ok(SizeSpec::Bytes(64 << 30)));
        assert_eq!(parse_size("512 MiB"), Ok(SizeSpec::Bytes(512 << 20)));
        assert_eq!(parse_size("100MB"), Ok(SizeSpec::Bytes(100_000_000)));
        assert_eq!(parse_size("4096"), Ok(SizeSpec::Bytes(4096)));
        assert_eq!(parse_size("25%"), Ok(SizeSpec::Percent(25)));
        assert!(parse_size("0%").is_err());
        assert!(parse_size("101%").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn wrong_unit_suggests_the_right_one() {
        let e = parse_bytes("64gib").unwrap_err();
        assert!(e.contains("did you mean `64GiB`"), "{e}");
    }
}
