//! Fixed-width base62 (`0-9`, `A-Z`, `a-z`, most significant digit first).
//!
//! Keys encode a 256-bit number, so this works on big-endian byte strings with schoolbook
//! long division: 43 digits × 32 bytes is a few thousand cheap operations and needs no
//! big-integer crate.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The number of base62 digits that always suffices for 32 bytes (62^43 > 2^256).
pub const DIGITS_FOR_32_BYTES: usize = 43;

/// The value of a base62 digit, or `None` for any other byte.
pub const fn digit_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'Z' => Some(byte - b'A' + 10),
        b'a'..=b'z' => Some(byte - b'a' + 36),
        _ => None,
    }
}

/// Writes `bytes` (a big-endian number) as exactly `out.len()` digits, left-padded with `0`.
/// Returns `false` if the number does not fit, leaving `out` unspecified.
pub fn encode_into(bytes: &[u8], out: &mut [u8]) -> bool {
    let mut number = [0u8; 64];
    let Some(number) = number.get_mut(..bytes.len()) else {
        return false;
    };
    number.copy_from_slice(bytes);
    for slot in out.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let accumulator = (remainder << 8) | u32::from(*byte);
            *byte = (accumulator / 62) as u8;
            remainder = accumulator % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    number.iter().all(|&b| b == 0)
}

/// Reads base62 digits into a big-endian number of `out.len()` bytes. Returns `false` for a
/// byte outside the alphabet or a number too large for `out`.
pub fn decode_into(digits: &[u8], out: &mut [u8]) -> bool {
    out.fill(0);
    for &digit in digits {
        let Some(value) = digit_value(digit) else {
            return false;
        };
        let mut carry = u32::from(value);
        for byte in out.iter_mut().rev() {
            let accumulator = u32::from(*byte) * 62 + carry;
            *byte = (accumulator & 0xff) as u8;
            carry = accumulator >> 8;
        }
        if carry != 0 {
            return false;
        }
    }
    true
}

/// A `u32` as exactly six digits (62^6 > 2^32).
pub fn encode_u32(value: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    let mut rest = value;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(rest % 62) as usize];
        rest /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_are_left_padded() {
        let mut out = [0u8; 4];
        assert!(encode_into(&[0, 61], &mut out));
        assert_eq!(&out, b"000z");
        assert!(encode_into(&[0, 62], &mut out));
        assert_eq!(&out, b"0010");
        assert_eq!(&encode_u32(0), b"000000");
        assert_eq!(&encode_u32(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn all_ones_fit_in_43_digits_and_round_trip() {
        let bytes = [0xffu8; 32];
        let mut digits = [0u8; DIGITS_FOR_32_BYTES];
        assert!(encode_into(&bytes, &mut digits));
        let mut back = [0u8; 32];
        assert!(decode_into(&digits, &mut back));
        assert_eq!(back, bytes);
    }

    #[test]
    fn too_large_numbers_are_refused() {
        let mut out = [0u8; 1];
        assert!(!encode_into(&[1, 0], &mut out));
        let mut byte = [0u8; 1];
        assert!(!decode_into(b"48", &mut byte)); // 4*62+8 = 256
        assert!(decode_into(b"47", &mut byte));
        assert_eq!(byte, [255]);
        assert!(!decode_into(b"4_", &mut byte));
    }
}
