//! Exact positions for errors found after parsing. The file is parsed again with a seed that
//! walks a path of keys and list indices and stops with an error at the node it names, so the
//! YAML parser itself supplies the line and column, whatever the style (block or flow). Only
//! done when an error is reported or a step's line is recorded.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// The value under this key.
    Key(String),
    /// The item at this index (0-based) of a list.
    Index(usize),
    /// The key itself rather than its value (last segment only).
    KeyName(String),
}

/// A path into a YAML document, e.g. `steps[2].fault.kill.target`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct YamlPath(Vec<Seg>);

impl YamlPath {
    pub(crate) fn root() -> Self {
        YamlPath(Vec::new())
    }

    /// The value under `key`.
    pub(crate) fn key(&self, key: impl Into<String>) -> Self {
        self.with(Seg::Key(key.into()))
    }

    /// The list item at `index` (0-based).
    pub(crate) fn index(&self, index: usize) -> Self {
        self.with(Seg::Index(index))
    }

    /// The key `key` itself, for errors about a key rather than its value.
    pub(crate) fn key_name(&self, key: impl Into<String>) -> Self {
        self.with(Seg::KeyName(key.into()))
    }

    fn with(&self, seg: Seg) -> Self {
        let mut v = self.0.clone();
        v.push(seg);
        YamlPath(v)
    }
}

/// Position (1-based line and column) of the node at `path`; where the path does not exist,
/// the deepest node on it that does; (1, 1) for an empty document.
pub(crate) fn locate(text: &str, path: &YamlPath) -> (usize, usize) {
    let de = serde_norway::Deserializer::from_str(text);
    Walk(&path.0)
        .deserialize(de)
        .err()
        .and_then(|e| e.location())
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1))
}

/// Position of the character at `offset` (in characters) inside the string scalar at `path`
/// whose value is `value`. Exact when the scalar is written on one line, plain or quoted
/// without escapes; otherwise the scalar's start.
pub(crate) fn locate_in_scalar(
    text: &str,
    path: &YamlPath,
    value: &str,
    offset: usize,
) -> (usize, usize) {
    let (line, column) = locate(text, path);
    let Some(src) = text.lines().nth(line.saturating_sub(1)) else {
        return (line, column);
    };
    let mut rest = src.chars().skip(column.saturating_sub(1)).peekable();
    let quoted = matches!(rest.peek(), Some('"' | '\''));
    if quoted {
        rest.next();
    }
    let rest: String = rest.collect();
    if rest.starts_with(value) {
        (line, column + usize::from(quoted) + offset)
    } else {
        (line, column)
    }
}

/// The error that carries the position out; its text is never shown.
const HERE: &str = "here";

struct Walk<'a>(&'a [Seg]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! stop_here {
    ($($name:ident : $ty:ty),+) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<(), E> {
            Err(E::custom(HERE))
        })+
    };
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    stop_here!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (want, rest, name_only) = match self.0.split_first() {
            Some((Seg::Key(k), rest)) => (k.as_str(), rest, false),
            Some((Seg::KeyName(k), rest)) => (k.as_str(), rest, true),
            _ => return Err(de::Error::custom(HERE)),
        };
        let stop_at = name_only.then_some(want);
        while let Some(key) = map.next_key_seed(KeySeed(stop_at))? {
            if key.as_deref() == Some(want) {
                return map.next_value_seed(Walk(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        // Not there: point at the map that should hold it.
        Err(de::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((Seg::Index(i), rest)) = self.0.split_first() {
            for _ in 0..*i {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom(HERE));
                }
            }
            if seq.next_element_seed(Walk(rest))?.is_some() {
                return Ok(());
            }
        }
        Err(de::Error::custom(HERE))
    }
}

/// Reads a key as text; stops with the position error when it is the one wanted by name.
struct KeySeed<'a>(Option<&'a str>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeySeed<'_> {
    fn scalar<E: de::Error>(self, s: String) -> Result<Option<String>, E> {
        if self.0 == Some(s.as_str()) {
            return Err(E::custom(HERE));
        }
        Ok(Some(s))
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        self.scalar(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "\
description: x
set: {down-after-milliseconds: 3000, quorum: 2}
steps:
  - at: 5s
    fault: {kill: {target: {master_of: g1}}}
  - wait:
      until: healthy
  - {note: \"done\"}
assertions:
  - lost_writes == 0
  - \"failover.unavailable < 30s\"
";

    fn p() -> YamlPath {
        YamlPath::root()
    }

    #[test]
    fn finds_values_in_block_and_flow_style() {
        assert_eq!(locate(T, &p().key("description")), (1, 14));
        assert_eq!(locate(T, &p().key("steps").index(0)), (4, 5));
        assert_eq!(locate(T, &p().key("steps").index(1)), (6, 5));
        assert_eq!(locate(T, &p().key("steps").index(2)), (8, 5));
        assert_eq!(locate(T, &p().key("steps").index(2).key("note")), (8, 12));
        let target = p()
            .key("steps")
            .index(0)
            .key("fault")
            .key("kill")
            .key("target");
        assert_eq!(locate(T, &target.key("master_of")), (5, 40));
        assert_eq!(
            locate(T, &p().key("steps").index(1).key("wait").key("until")),
            (7, 14)
        );
    }

    #[test]
    fn finds_keys_themselves() {
        assert_eq!(locate(T, &p().key("set").key_name("quorum")), (2, 38));
        assert_eq!(locate(T, &p().key("set").key("quorum")), (2, 46));
        assert_eq!(locate(T, &p().key_name("steps")), (3, 1));
    }

    #[test]
    fn falls_back_to_the_deepest_existing_node() {
        assert_eq!(locate(T, &p().key("steps").index(7)), (4, 3));
        assert_eq!(locate(T, &p().key("steps").index(0).key("heal")), (4, 5));
        assert_eq!(locate("", &p().key("steps")), (1, 1));
    }

    #[test]
    fn points_inside_one_line_scalars() {
        let a = p().key("assertions");
        assert_eq!(
            locate_in_scalar(T, &a.index(0), "lost_writes == 0", 12),
            (10, 17)
        );
        // Quoted: one more for the quote.
        let v = "failover.unavailable < 30s";
        assert_eq!(locate_in_scalar(T, &a.index(1), v, 23), (11, 29));
        // A value that does not match the text as written: the scalar's start.
        assert_eq!(locate_in_scalar(T, &a.index(1), "other", 3), (11, 5));
    }
}
