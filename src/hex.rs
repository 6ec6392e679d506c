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

/// Decodes hex digits (either case) into `out`; `None` for an odd count, a
/// non-digit or too little room.
pub(crate) fn decode<const N: usize>(digits: &[u8], out: &mut heapless::Vec<u8, N>) -> Option<()> {
    if digits.len() % 2 != 0 || digits.len() / 2 > N {
        return None;
    }
    out.clear();
    for pair in digits.chunks_exact(2) {
        let b = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        out.push(b).ok()?;
    }
    Some(())
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
        let mut dec = heapless::Vec::<u8, 256>::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(&dec[..], &data[..]);
        decode(b"0a0B", &mut dec).unwrap();
        assert_eq!(&dec[..], &[10, 11]);
    }

    #[test]
    fn hex_decode_rejects_odd_counts_and_non_digits() {
        let mut dec = heapless::Vec::<u8, 4>::new();
        assert!(decode(b"abc", &mut dec).is_none());
        assert!(decode(b"zz", &mut dec).is_none());
        assert!(decode(b"0011223344", &mut dec).is_none());
    }
}
