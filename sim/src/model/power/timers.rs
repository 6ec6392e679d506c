//! The timer codes of PSM and eDRX as `AT+CPSMS`, `AT+CEDRXS`, `+CEREG` and `+CEDRXRDP` write
//! them: bit strings of one byte (T3412, T3324) or half a byte (eDRX cycle, paging time
//! window), and the durations they stand for (3GPP TS 24.008, GPRS Timer 3 and 2 and the
//! Extended DRX parameters, as the BC26 AT Commands Manual restates them; see
//! `docs/at-reference.md`).

use std::time::Duration;

/// `n` characters `0`/`1` (most significant bit first) as a number; `None` for anything else.
pub(crate) fn parse_bits(s: &[u8], n: usize) -> Option<u8> {
    if s.len() != n || n > 8 {
        return None;
    }
    s.iter().try_fold(0u8, |acc, &c| match c {
        b'0' => Some(acc << 1),
        b'1' => Some(acc << 1 | 1),
        _ => None,
    })
}

/// The `n` low bits of `v` as a bit string, most significant first.
pub(crate) fn bits(v: u8, n: usize) -> String {
    (0..n)
        .rev()
        .map(|i| if v >> i & 1 == 1 { '1' } else { '0' })
        .collect()
}

/// Bits 8-6 of a timer byte (the unit) and bits 5-1 (the value).
fn split(code: u8) -> (u8, u64) {
    (code >> 5, u64::from(code & 0x1f))
}

/// The extended periodic TAU timer T3412 (GPRS Timer 3); `None`: deactivated.
pub(crate) fn periodic_tau(code: u8) -> Option<Duration> {
    let (unit, v) = split(code);
    let secs = match unit {
        0b000 => 600,
        0b001 => 3_600,
        0b010 => 36_000,
        0b011 => 2,
        0b100 => 30,
        0b101 => 60,
        0b110 => 1_152_000,
        _ => return None,
    };
    Some(Duration::from_secs(v * secs))
}

/// The active time T3324 (GPRS Timer 2); `None`: deactivated. Units 011-110 are not in the
/// BC26 manual; 3GPP TS 24.008 reads them as minutes.
pub(crate) fn active_time(code: u8) -> Option<Duration> {
    let (unit, v) = split(code);
    let secs = match unit {
        0b000 => 2,
        0b010 => 360,
        0b111 => return None,
        _ => 60,
    };
    Some(Duration::from_secs(v * secs))
}

/// The eDRX cycle of a 4-bit code in NB-S1 mode. Codes the BC26 table leaves out are read
/// as `0010` (20.48 s).
pub(crate) fn edrx_cycle(code: u8) -> Duration {
    // In units of 10 ms: 20.48 s is 2,048 of them.
    let ten_ms: u64 = match code & 0x0f {
        0b0011 => 4_096,
        0b0101 => 8_192,
        0b1001 => 16_384,
        0b1010 => 32_768,
        0b1011 => 65_536,
        0b1100 => 131_072,
        0b1101 => 262_144,
        0b1110 => 524_288,
        0b1111 => 1_048_576,
        _ => 2_048,
    };
    Duration::from_millis(ten_ms * 10)
}

/// The paging time window of a 4-bit code in NB-S1 mode: (code + 1) x 2.56 s.
pub(crate) fn ptw(code: u8) -> Duration {
    Duration::from_millis((u64::from(code & 0x0f) + 1) * 2_560)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn bit_strings_are_exactly_n_zeros_and_ones() {
        assert_eq!(parse_bits(b"01000011", 8), Some(0x43));
        assert_eq!(parse_bits(b"0101", 4), Some(5));
        for bad in [&b"0100001"[..], b"010000111", b"0100001x", b"", b" 1000011"] {
            assert_eq!(parse_bits(bad, 8), None, "{bad:?}");
        }
        assert_eq!(bits(0x43, 8), "01000011");
        assert_eq!(bits(5, 4), "0101");
    }

    #[test]
    fn the_manuals_examples_decode_to_their_durations() {
        // AT+CPSMS: "01000111" is 70 hours of T3412, "00100100" 4 minutes of T3324.
        assert_eq!(periodic_tau(0b010_00111), secs(70 * 3600));
        assert_eq!(active_time(0b001_00100), secs(4 * 60));
        // RT-Thread's BC26 driver asks for "01000011" (30 h) and "00000001" (2 s).
        assert_eq!(periodic_tau(0b010_00011), secs(30 * 3600));
        assert_eq!(active_time(0b000_00001), secs(2));
        // Every unit of T3412.
        assert_eq!(periodic_tau(0b000_00101), secs(50 * 60));
        assert_eq!(periodic_tau(0b001_00001), secs(3600));
        assert_eq!(periodic_tau(0b011_11111), secs(62));
        assert_eq!(periodic_tau(0b100_00010), secs(60));
        assert_eq!(periodic_tau(0b101_00011), secs(180));
        assert_eq!(periodic_tau(0b110_00001), secs(320 * 3600));
        assert_eq!(periodic_tau(0b111_00001), None);
        // T3324: decihours, the units 3GPP reads as minutes, deactivated.
        assert_eq!(active_time(0b010_00010), secs(12 * 60));
        assert_eq!(active_time(0b011_00010), secs(120));
        assert_eq!(active_time(0b111_00000), None);
    }

    #[test]
    fn edrx_codes_decode_as_the_nb_s1_table() {
        assert_eq!(edrx_cycle(0b0010), Duration::from_millis(20_480));
        assert_eq!(edrx_cycle(0b0101), Duration::from_millis(81_920));
        assert_eq!(edrx_cycle(0b1110), Duration::from_millis(5_242_880));
        assert_eq!(edrx_cycle(0b1111), Duration::from_millis(10_485_760));
        assert_eq!(edrx_cycle(0b0000), Duration::from_millis(20_480));
        assert_eq!(ptw(0b0000), Duration::from_millis(2_560));
        assert_eq!(ptw(0b0011), Duration::from_millis(10_240));
        assert_eq!(ptw(0b1111), Duration::from_millis(40_960));
    }
}
