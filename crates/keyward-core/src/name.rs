//! Names people give keys: shown in tables, dashboards and logs, so nothing in them may
//! move a terminal's cursor or reorder the text around it.

use std::fmt;

use serde::Serialize;

/// Most characters in a name.
pub const MAX_NAME_CHARS: usize = 200;

/// A key's name: 1 to 200 characters, none of them a control character (C0, C1) or a
/// bidirectional-formatting character (U+200E–U+200F, U+202A–U+202E, U+2066–U+2069).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKeyName {
    #[error("must be 1 to 200 characters")]
    Length,
    #[error("must not contain control or bidirectional-formatting characters")]
    Character,
}

impl KeyName {
    pub fn parse(value: &str) -> Result<Self, InvalidKeyName> {
        let count = value.chars().count();
        if count == 0 || count > MAX_NAME_CHARS {
            return Err(InvalidKeyName::Length);
        }
        if value.chars().any(is_forbidden) {
            return Err(InvalidKeyName::Character);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional-formatting characters.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_1_to_200_characters_without_control_or_bidi_characters() {
        assert!(KeyName::parse("CI deploys").is_ok());
        assert!(
            KeyName::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert_eq!(KeyName::parse(""), Err(InvalidKeyName::Length));
        assert_eq!(
            KeyName::parse(&"a".repeat(201)),
            Err(InvalidKeyName::Length)
        );
        for bad in [
            "a\u{1b}[2J",
            "tab\there",
            "nul\0",
            "c1\u{9b}",
            "del\u{7f}",
            "\u{202E}gnp.exe",
            "a\u{2066}b",
            "\u{200F}",
        ] {
            assert_eq!(
                KeyName::parse(bad),
                Err(InvalidKeyName::Character),
                "{bad:?}"
            );
        }
    }
}
