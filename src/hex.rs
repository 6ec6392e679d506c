//! Hex digits for `AT+QMTCFG="dataformat"` = 1.

const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Writes the hex digits of `data` into `out` (two per byte); returns the count.
/// `out` must hold `2 * data.len()` bytes.
pub(crate) fn encode_into(data: &[u8], out: &mut [u8]) -> usize {
    for (pair, &b) in out.chunks_exact_mut(2).zip(data) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    2 * data.len()
}

/// Marks a byte that is not a hex digit in [`NIBBLE`].
const NOT_HEX: u8 = 0x80;

/// The value of each hex digit (either case); [`NOT_HEX`] for other bytes.
/// One table lookup per digit, with no branch (256 bytes of flash: a
/// reference to a constant, so one copy in read-only data).
const NIBBLE: &[u8; 256] = &{
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Whether `digits` is an even number of hex digits (either case): one
/// lookup and one OR per digit, no branch inside the loop.
pub(crate) fn is_valid(digits: &[u8]) -> bool {
    let bad = digits
        .iter()
        .fold(0u8, |acc, &d| acc | NIBBLE[usize::from(d)]);
    digits.len().is_multiple_of(2) && bad & NOT_HEX == 0
}

/// Decodes hex digits (either case) into `out`, which holds exactly half as
/// many bytes. Callers check the digits first with [`is_valid`]; a
/// non-digit would decode to garbage, never a panic.
pub(crate) fn decode_into(digits: &[u8], out: &mut [u8]) {
    for (pair, o) in digits.chunks_exact(2).zip(out.iter_mut()) {
        let hi = NIBBLE[usize::from(pair[0])];
        let lo = NIBBLE[usize::from(pair[1])];
        *o = (hi << 4) | (lo & 0x0f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_every_byte() {
        let data: std::vec::Vec<u8> = (0..=255).collect();
        let mut enc = [0u8; 512];
        assert_eq!(encode_into(&data, &mut enc), 512);
        assert_eq!(&enc[..6], b"000102");
        assert_eq!(&enc[510..], b"FF");
        let mut dec = [0u8; 256];
        decode_into(&enc, &mut dec);
        assert_eq!(&dec[..], &data[..]);
        let mut two = [0u8; 2];
        decode_into(b"0a0B", &mut two);
        assert_eq!(two, [10, 11]);
    }

    #[test]
    fn only_an_even_count_of_hex_digits_is_valid() {
        assert!(is_valid(b""));
        assert!(is_valid(b"0123456789abcdefABCDEF"));
        assert!(!is_valid(b"0"), "odd count");
        for b in 0..=255u8 {
            let pair = [b'0', b];
            assert_eq!(is_valid(&pair), b.is_ascii_hexdigit(), "byte {b:#04x}");
        }
    }
}
