//! The key format, checked from the outside.

use std::collections::HashSet;
use std::convert::Infallible;

use keyward_core::{Environment, KeyFormatError, KeyPrefix, PlainKey, PresentedKey};
use proptest::prelude::*;
use rand::TryRngCore;

/// An RNG that yields a fixed sequence of bytes, to see exactly what the body encodes.
struct FixedBytes(Vec<u8>);

impl TryRngCore for FixedBytes {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("keys draw bytes, not words")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("keys draw bytes, not words")
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
        let taken: Vec<u8> = self.0.drain(..dest.len()).collect();
        dest.copy_from_slice(&taken);
        Ok(())
    }
}

fn live() -> KeyPrefix {
    Environment::Live.default_prefix()
}

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Independent reference: the base62 of a big-endian number, via u128 halves is not enough
/// for 256 bits, so use repeated division over a Vec<u32> of base-2^16 limbs.
fn reference_base62(bytes: &[u8], width: usize) -> String {
    let mut limbs: Vec<u32> = bytes
        .chunks(2)
        .map(|pair| u32::from(pair[0]) << 8 | u32::from(pair[1]))
        .collect();
    let mut digits = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut remainder = 0u32;
        for limb in limbs.iter_mut() {
            let value = remainder << 16 | *limb;
            *limb = value / 62;
            remainder = value % 62;
        }
        digits.push(BASE62.as_bytes()[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

#[test]
fn the_body_encodes_exactly_the_bytes_the_rng_yields() {
    let bytes: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let key = PlainKey::generate_with(&live(), &mut FixedBytes(bytes.clone())).unwrap();
    assert_eq!(key.random_bytes().as_slice(), bytes.as_slice());

    let text = key.expose_secret();
    let body = text.strip_prefix("sk_live_").unwrap();
    assert_eq!(body.len(), 49);
    assert_eq!(&body[..43], reference_base62(&bytes, 43));
    let crc = crc32fast::hash(&text.as_bytes()[..text.len() - 6]);
    assert_eq!(&body[43..], reference_base62(&crc.to_be_bytes(), 6));
}

#[test]
fn all_zero_bytes_are_left_padded_to_43_digits() {
    let key = PlainKey::generate_with(&live(), &mut FixedBytes(vec![0; 32])).unwrap();
    let body = &key.expose_secret()["sk_live_".len()..];
    assert_eq!(&body[..43], "0".repeat(43));
    assert_eq!(
        PlainKey::parse(key.expose_secret())
            .unwrap()
            .random_bytes()
            .as_slice(),
        &[0; 32]
    );
}

#[test]
fn generated_keys_parse_back() {
    for prefix in [
        "sk_live",
        "sk_test",
        "acme",
        "acme_prod1",
        "a",
        "abcdefghijkl_abcdefghijk",
    ] {
        let prefix = KeyPrefix::parse(prefix).unwrap();
        let key = PlainKey::generate(&prefix).unwrap();
        let parsed = PlainKey::parse(key.expose_secret()).unwrap();
        assert_eq!(parsed.expose_secret(), key.expose_secret());
        assert_eq!(parsed.prefix(), prefix.as_str());
        assert_eq!(parsed.hash(), key.hash());
        assert!(matches!(
            PresentedKey::classify(key.expose_secret()),
            Ok(PresentedKey::Native(_))
        ));
    }
}

#[test]
fn ten_thousand_os_keys_are_distinct() {
    let keys: HashSet<String> = (0..10_000)
        .map(|_| {
            PlainKey::generate(&live())
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 10_000);
}

#[test]
fn a_one_character_change_anywhere_in_the_body_fails_the_checksum() {
    let key = PlainKey::generate(&live()).unwrap();
    let text = key.expose_secret().as_bytes().to_vec();
    for position in "sk_live_".len()..text.len() {
        for replacement in BASE62.bytes().filter(|&b| b != text[position]) {
            let mut changed = text.clone();
            changed[position] = replacement;
            let changed = String::from_utf8(changed).unwrap();
            let error = PlainKey::parse(&changed).unwrap_err();
            // A change can also push the 43-digit number past 2^256: malformed, never valid.
            assert!(
                matches!(
                    error,
                    KeyFormatError::BadChecksum | KeyFormatError::Malformed
                ),
                "position {position}"
            );
            assert!(
                PresentedKey::classify(&changed).is_err(),
                "position {position}"
            );
        }
    }
}

#[test]
fn a_one_character_change_in_the_prefix_fails_the_checksum() {
    let key = PlainKey::generate(&KeyPrefix::parse("acme_prod").unwrap()).unwrap();
    let text = key.expose_secret();
    for position in 0..text.rfind('_').unwrap() {
        for replacement in ('a'..='z').chain('0'..='9') {
            let mut changed: Vec<char> = text.chars().collect();
            if changed[position] == replacement || changed[position] == '_' {
                continue;
            }
            changed[position] = replacement;
            let changed: String = changed.into_iter().collect();
            assert!(PlainKey::parse(&changed).is_err(), "{position}");
            // A prefix outside the grammar makes it "not keyward's format" (a foreign
            // candidate); either way it is never accepted as a keyward key.
            assert!(
                !matches!(
                    PresentedKey::classify(&changed),
                    Ok(PresentedKey::Native(_))
                ),
                "{position}"
            );
        }
    }
}

#[test]
fn secrets_never_show_in_debug_display_or_serde() {
    let key = PlainKey::generate(&live()).unwrap();
    let secret = key.expose_secret().to_owned();
    let body = &secret["sk_live_".len()..];
    let renderings = [
        format!("{key:?}"),
        format!("{key}"),
        format!("{key:#?}"),
        serde_json::to_string(&key).unwrap(),
        format!("{:?}", PresentedKey::classify(&secret).unwrap()),
        format!("{:?}", PresentedKey::classify("legacy-key-123456").unwrap()),
    ];
    for rendering in renderings {
        assert!(!rendering.contains(body), "{rendering}");
        assert!(!rendering.contains(&body[..12]), "{rendering}");
        assert!(!rendering.contains("legacy-key"), "{rendering}");
    }
}

#[test]
fn display_prefix_shows_four_body_characters() {
    let key = PlainKey::generate(&live()).unwrap();
    let shown = key.display_prefix();
    assert_eq!(shown, format!("{}…", &key.expose_secret()[..12]));
}

#[test]
fn prefixes_outside_the_grammar_are_refused() {
    for bad in [
        "",
        "Sk_live",
        "1sk",
        "sk_",
        "_live",
        "sk_live_x",
        "sk-live",
        "abcdefghijklm",
        "sk_abcdefghijkl",
        "sk_LIVE",
        "sk live",
        "ü",
    ] {
        assert!(KeyPrefix::parse(bad).is_err(), "{bad:?} was accepted");
    }
    for good in [
        "a",
        "sk_live",
        "sk_test",
        "abcdefghijkl",
        "a1_b2",
        "x_abcdefghijk",
    ] {
        assert!(KeyPrefix::parse(good).is_ok(), "{good:?} was refused");
    }
}

#[test]
fn strings_in_the_wrong_shape_are_malformed_or_foreign() {
    let key = PlainKey::generate(&live()).unwrap();
    let text = key.expose_secret();
    assert_eq!(
        PlainKey::parse(&text[..text.len() - 1]).unwrap_err(),
        KeyFormatError::Malformed
    );
    assert_eq!(
        PlainKey::parse(&format!("{text}0")).unwrap_err(),
        KeyFormatError::Malformed
    );
    assert_eq!(
        PlainKey::parse("garbage").unwrap_err(),
        KeyFormatError::Malformed
    );
    // Not keyward's format: a candidate for an imported key, unless unprintable or huge.
    assert!(matches!(
        PresentedKey::classify("garbage"),
        Ok(PresentedKey::Foreign(_))
    ));
    assert!(PresentedKey::classify("").is_err());
    assert!(PresentedKey::classify("has space").is_err());
    assert!(PresentedKey::classify(&"x".repeat(513)).is_err());
    // The largest 43-digit string exceeds 2^256: shaped like a keyward key, never valid.
    let too_big = format!("sk_live_{}", "z".repeat(43));
    let crc = crc32fast::hash(too_big.as_bytes());
    let too_big = format!("{too_big}{}", reference_base62(&crc.to_be_bytes(), 6));
    assert_eq!(
        PlainKey::parse(&too_big).unwrap_err(),
        KeyFormatError::Malformed
    );
    assert!(PresentedKey::classify(&too_big).is_err());
}

proptest! {
    #[test]
    fn any_bytes_round_trip_through_the_body(bytes in proptest::array::uniform32(any::<u8>())) {
        let key = PlainKey::generate_with(&live(), &mut FixedBytes(bytes.to_vec())).unwrap();
        let parsed = PlainKey::parse(key.expose_secret()).unwrap();
        prop_assert_eq!(*parsed.random_bytes(), bytes);
        prop_assert_eq!(key.expose_secret().len(), "sk_live_".len() + 49);
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(input in "\\PC{0,80}") {
        let _ = PlainKey::parse(&input);
        let _ = PresentedKey::classify(&input);
    }

    #[test]
    fn a_keyward_shaped_string_with_a_random_tail_is_almost_never_valid(body in "[0-9A-Za-z]{49}") {
        let candidate = format!("sk_live_{body}");
        let text = candidate.as_bytes();
        let crc = crc32fast::hash(&text[..text.len() - 6]);
        let matches = body[43..] == reference_base62(&crc.to_be_bytes(), 6);
        if !matches {
            prop_assert!(PlainKey::parse(&candidate).is_err());
        }
        if !matches {
            prop_assert!(PresentedKey::classify(&candidate).is_err());
        }
    }
}
