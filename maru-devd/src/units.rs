//! Byte counts shown to people, in binary units: one unit table for the plan, `status`
//! (`1073741824 bytes (1 GiB)`) and the discovery tables (`1.0 GiB`).

/// Binary units, smallest first.
const UNITS: [(&str, u64); 6] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("EiB", 1 << 60),
];

/// The largest unit not above `bytes` (none under 1 KiB).
fn unit_of(bytes: u64) -> Option<(&'static str, u64)> {
    UNITS.iter().rev().find(|(_, m)| bytes >= *m).copied()
}

/// Exact bytes with the readable size beside them: `1073741824 bytes (1 GiB)`,
/// `1610612736 bytes (1.5 GiB)`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    match unit_of(bytes) {
        None => format!("{bytes} bytes"),
        Some((name, m)) if bytes.is_multiple_of(m) => {
            format!("{bytes} bytes ({} {name})", bytes / m)
        }
        Some((name, m)) => format!("{bytes} bytes ({:.1} {name})", bytes as f64 / m as f64),
    }
}

/// A short size for table cells: `256.0 MiB`; under 1 KiB the exact number of bytes.
pub fn short(bytes: u64) -> String {
    match unit_of(bytes) {
        None => format!("{bytes} B"),
        Some((name, m)) => format!("{:.1} {name}", bytes as f64 / m as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(1 << 30), "1073741824 bytes (1 GiB)");
        assert_eq!(human(1536 << 20), "1610612736 bytes (1.5 GiB)");
        assert_eq!(human(100), "100 bytes");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(short(0), "0 B");
        assert_eq!(short(1023), "1023 B");
        assert_eq!(short(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(short(262_144_000), "250.0 MiB");
        assert_eq!(short(4 << 30), "4.0 GiB");
    }
}
