//! Hex digits for `AT+QMTCFG="dataformat"` = 1.

const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Writes the hex digits of `data` into `out` (two per byte); returns the count.
/// `out` must hold `2 * data.len()` bytes.
pub(crate) fn encode_into(data: &[u8], out: &mut [u8]) -> usize {
    for (i, &b) in data.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    2 * data.len()
}

fn nibble(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex digits (either case) into `out`, which holds exactly half as
/// many bytes; a non-digit decodes as 0 (callers check the digits first).
pub(crate) fn decode_into(digits: &[u8], out: &mut [u8]) {
    for (pair, o) in digits.chunks_exact(2).zip(out.iter_mut()) {
        *o = (nibble(pair[0]).unwrap_or(0) << 4) | nibble(pair[1]).unwrap_or(0);
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
}
