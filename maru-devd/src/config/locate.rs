//! Finds where a node of a YAML document sits (line and column), for error messages.
//!
//! [`super::yaml::Value`] carries no positions, but the deserializer stamps every error a
//! visitor raises with the position of the node being visited. [`locate`] re-reads the
//! document with a visitor that walks down a [`Seg`] path and fails on purpose at the target
//! node, then takes the position from that error. Configs are a few lines long, so the extra
//! parse per reported error costs nothing.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// The value under this key of a mapping.
    Value(String),
    /// The key itself (to point at a misspelled or duplicated key).
    Key(String),
    /// The n-th item of a sequence.
    Index(usize),
}

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// Returns the position of the node `path` names in `text`, if the path exists.
pub fn locate(text: &str, path: &[Seg]) -> Option<Pos> {
    match serde_saphyr::with_deserializer_from_str(text, |de| (Probe { path }).deserialize(de)) {
        Ok(()) => None,
        Err(e) if message(&e) == MARKER => position(&e),
        Err(_) => None,
    }
}

/// Where a reader error points, if it knows.
pub fn position(e: &serde_saphyr::Error) -> Option<Pos> {
    let l = e.location()?;
    Some(Pos {
        line: usize::try_from(l.line()).ok().filter(|&n| n > 0)?,
        col: usize::try_from(l.column()).ok().filter(|&n| n > 0)?,
    })
}

/// A reader error's message alone: no position, no source snippet, and no parser context
/// (`while parsing a flow mapping, did not find expected ',' or '}'` keeps what was expected).
pub fn message(e: &serde_saphyr::Error) -> String {
    let mut msg = e.without_snippet().to_string();
    if let Some(cut) = msg.find(" at line ") {
        msg.truncate(cut);
    }
    match msg.strip_prefix("while ").and_then(|m| m.split_once(", ")) {
        Some((_, problem)) => problem.to_string(),
        None => msg,
    }
}

const MARKER: &str = "maru-locate-target";

struct Probe<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(ProbeVisitor { path: self.path })
    }
}

struct ProbeVisitor<'a> {
    path: &'a [Seg],
}

impl ProbeVisitor<'_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(MARKER))
        } else {
            Ok(())
        }
    }
}

macro_rules! leaf_visits {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _v: $ty) -> Result<(), E> { self.leaf() })*
    };
}

impl<'de> Visitor<'de> for ProbeVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    leaf_visits!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(MARKER)),
            Some(split) => split,
        };
        let mut i = 0;
        loop {
            let wanted = matches!(first, Seg::Index(want) if *want == i);
            let more = if wanted {
                seq.next_element_seed(Probe { path: rest })?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(MARKER)),
            Some(split) => split,
        };
        loop {
            let seed = KeySeed {
                want: first,
                last: rest.is_empty(),
            };
            match map.next_key_seed(seed)? {
                None => return Ok(()),
                Some(true) => map.next_value_seed(Probe { path: rest })?,
                Some(false) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }
}

/// Reads one mapping key; true when it is the one the path wants next. Fails on purpose at
/// the key when the path ends with [`Seg::Key`].
struct KeySeed<'a> {
    want: &'a Seg,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match self.want {
            Seg::Key(k) if k == v && self.last => Err(E::custom(MARKER)),
            Seg::Value(k) if k == v => Ok(true),
            _ => Ok(false),
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "mount: /mnt/x\npools:\n  - name: a\n    size: 1GiB\n  - name: b\n    source: {numa: {node: 3}}\n";

    fn v(s: &str) -> Seg {
        Seg::Value(s.into())
    }

    #[test]
    fn finds_values_keys_and_items() {
        assert_eq!(locate(DOC, &[v("mount")]), Some(Pos { line: 1, col: 8 }));
        assert_eq!(
            locate(DOC, &[v("pools"), Seg::Index(0), v("size")]),
            Some(Pos { line: 4, col: 11 })
        );
        assert_eq!(
            locate(DOC, &[v("pools"), Seg::Index(1), Seg::Key("source".into())]),
            Some(Pos { line: 6, col: 5 })
        );
        assert_eq!(
            locate(
                DOC,
                &[v("pools"), Seg::Index(1), v("source"), v("numa"), v("node")]
            ),
            Some(Pos { line: 6, col: 27 })
        );
        assert_eq!(
            locate(DOC, &[v("pools"), Seg::Index(1)]),
            Some(Pos { line: 5, col: 5 })
        );
    }

    #[test]
    fn missing_path_gives_none() {
        assert_eq!(locate(DOC, &[v("nope")]), None);
        assert_eq!(locate(DOC, &[v("pools"), Seg::Index(7), v("size")]), None);
    }
}
