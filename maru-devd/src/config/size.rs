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

/// Binary units, largest first, for suggestions that keep a value exact.
const BINARY: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// `bytes` written with the largest binary unit it is a whole multiple of (`1536MiB`), or as
/// plain bytes.
fn exact_form(bytes: u128) -> String {
    for (u, m) in BINARY {
        let m = u128::from(*m);
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{u}", bytes / m);
        }
    }
    bytes.to_string()
}

/// The unit an unknown one most likely stands for, with the same magnitude: a known unit
/// in other case (`gib` → `GiB`), a one- or two-letter binary shorthand (`M`, `Gi` → `MiB`,
/// `GiB`, as `mount -o size=512M` means), `bytes` → `B`, else a close spelling of a unit
/// with the same first letter (never `512M` → `512B`).
fn likely_unit(unit: &str) -> Option<(&'static str, u64)> {
    if let Some(&(u, m)) = UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) {
        return Some((u, m));
    }
    let lower = unit.to_ascii_lowercase();
    let short = match lower.as_str() {
        "k" | "ki" => Some("KiB"),
        "m" | "mi" => Some("MiB"),
        "g" | "gi" => Some("GiB"),
        "t" | "ti" => Some("TiB"),
        "byte" | "bytes" => Some("B"),
        _ => None,
    };
    let name = short.or_else(|| {
        let same_magnitude: Vec<&str> = UNITS
            .iter()
            .map(|(u, _)| *u)
            .filter(|u| {
                let first = |s: &str| s.chars().next().map(|c| c.to_ascii_lowercase());
                first(u) == first(unit)
            })
            .collect();
        did_you_mean(unit, &same_magnitude)
    })?;
    UNITS.iter().find(|(u, _)| *u == name).copied()
}

/// `int.frac` times `mult`, exactly (in bytes, possibly with a remainder): (whole bytes,
/// whether it is whole).
fn scaled(int: &str, frac: &str, mult: u64) -> Option<(u128, bool)> {
    let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let n: u128 = format!("{int}{frac}").parse().ok()?;
    let v = n.checked_mul(u128::from(mult))?;
    Some((v / scale, v % scale == 0))
}

/// Parses a byte count with an optional unit (no percentage). The error says what is wrong
/// and, where it can, the exact value to write instead.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(format!(
            "bad size `{text}`: it must start with a whole number; {SIZE_HINT}"
        ));
    }
    let known = if unit.is_empty() {
        Some(("B", 1))
    } else {
        UNITS.iter().find(|(u, _)| *u == unit).copied()
    };
    let Some((_, mult)) = known else {
        let hint = match likely_unit(unit) {
            Some((u, _)) if frac.is_empty() => format!(" (did you mean `{int}{u}`?)"),
            Some((u, m)) => match scaled(int, frac, m) {
                Some((b, true)) => format!(
                    " (did you mean {number} {u}, that is `{}` ({b} bytes)?)",
                    exact_form(b)
                ),
                _ => String::new(),
            },
            None => String::new(),
        };
        return Err(format!(
            "bad size `{text}`: unknown unit `{unit}`{hint}; {SIZE_HINT}"
        ));
    };
    if !frac.is_empty() {
        return Err(match scaled(int, frac, mult) {
            Some((b, true)) => format!(
                "bad size `{text}`: sizes are whole numbers of a unit; write `{}` ({b} bytes) for exactly that size",
                exact_form(b)
            ),
            Some((b, false)) => format!(
                "bad size `{text}`: that is not a whole number of bytes (about {b}); {SIZE_HINT}"
            ),
            None => format!("bad size `{text}`: more than 2^64 bytes"),
        });
    }
    let n: u64 = int
        .parse()
        .map_err(|_| format!("bad size `{text}`: the number is too large for 64 bits"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("bad size `{text}`: more than 2^64 bytes"))
}

/// For a size written with a decimal unit (`2GB`, powers of 1000), a note for the plan: what
/// it is in bytes, and the binary unit to write if that was meant. `None` otherwise.
pub fn decimal_note(text: &str) -> Option<String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (int, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let binary = match unit {
        "KB" => "KiB",
        "MB" => "MiB",
        "GB" => "GiB",
        "TB" => "TiB",
        _ => return None,
    };
    let bytes = parse_bytes(t).ok()?;
    let (_, bmult) = UNITS.iter().find(|(u, _)| *u == binary)?;
    let meant = int.parse::<u128>().ok()? * u128::from(*bmult);
    Some(format!(
        "`{t}` is {bytes} bytes ({unit} counts in powers of 1000); if you meant {meant} bytes, write `{int}{binary}`"
    ))
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
        // a shorthand keeps its magnitude: never `512B`
        let e = parse_bytes("512M").unwrap_err();
        assert!(e.contains("did you mean `512MiB`"), "{e}");
        let e = parse_bytes("2Gi").unwrap_err();
        assert!(e.contains("did you mean `2GiB`"), "{e}");
        let e = parse_bytes("8 MiBs").unwrap_err();
        assert!(e.contains("did you mean `8MiB`"), "{e}");
        let e = parse_bytes("1.5G").unwrap_err();
        assert!(e.contains("`1536MiB` (1610612736 bytes)"), "{e}");
    }

    #[test]
    fn fractions_are_refused_with_the_exact_value() {
        let e = parse_bytes("1.5GiB").unwrap_err();
        assert!(
            e.contains("write `1536MiB` (1610612736 bytes) for exactly that size"),
            "{e}"
        );
        let e = parse_bytes("2.0GiB").unwrap_err();
        assert!(e.contains("write `2GiB`"), "{e}");
        let e = parse_bytes("0.3KiB").unwrap_err();
        assert!(e.contains("not a whole number of bytes"), "{e}");
        assert!(
            parse_bytes("5µB").is_err(),
            "a non-ASCII unit is an error, not a panic"
        );
        assert!(parse_bytes("1.GiB").is_err());
        assert!(parse_bytes("1.2.3GiB").is_err());
    }

    #[test]
    fn decimal_units_count_in_powers_of_1000_with_a_note() {
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        let n = decimal_note("2GB").unwrap();
        assert_eq!(
            n,
            "`2GB` is 2000000000 bytes (GB counts in powers of 1000); if you meant 2147483648 bytes, write `2GiB`"
        );
        assert_eq!(decimal_note("2GiB"), None);
        assert_eq!(decimal_note("4096"), None);
    }
}
