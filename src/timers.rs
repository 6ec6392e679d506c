//! The 3GPP timer codes of the power commands (docs/at-reference.md, "Timer
//! codes"): T3412 (GPRS Timer 3) and T3324 (GPRS Timer 2) as one byte, the
//! eDRX cycle and paging time window as half a byte. Plain values, used by
//! the commands and carried by [`Event`](crate::Event)s.

/// Seconds per unit of GPRS Timer 3 (T3412), by bits 8-6 (0: deactivated).
const T3412_UNITS: [u32; 8] = [600, 3_600, 36_000, 2, 30, 60, 1_152_000, 0];
/// GPRS Timer 3 codes' units, smallest first.
const T3412_ORDER: [u8; 7] = [3, 4, 5, 0, 1, 2, 6];
/// Seconds per unit of GPRS Timer 2 (T3324); 3GPP reads 3-6 as 1 minute.
const T3324_UNITS: [u32; 8] = [2, 60, 360, 60, 60, 60, 60, 0];
const T3324_ORDER: [u8; 3] = [0, 1, 2];

fn timer_secs(units: &[u32; 8], code: u8) -> Option<u32> {
    let unit = units[usize::from(code >> 5)];
    (unit != 0).then_some(unit * u32::from(code & 0x1f))
}

/// The code of the shortest timer at least `secs` long, in the finest unit
/// that holds it.
fn timer_code(units: &[u32; 8], order: &[u8], secs: u32) -> Option<u8> {
    order.iter().find_map(|&u| {
        let n = secs.div_ceil(units[usize::from(u)]);
        (n <= 31).then_some((u << 5) | n as u8)
    })
}

/// The 0/1 characters of the low `bits` bits of `v`, most significant
/// first, in the first `bits` bytes.
pub(crate) fn bit_chars(v: u8, bits: u8) -> [u8; 8] {
    let mut s = [0u8; 8];
    for i in 0..bits {
        s[usize::from(i)] = b'0' + ((v >> (bits - 1 - i)) & 1);
    }
    s
}

/// A quoted field of exactly `bits` 0/1 characters (quotes already removed).
pub(crate) fn parse_bits(field: &[u8], bits: usize) -> Option<u8> {
    if field.len() != bits {
        return None;
    }
    field.iter().try_fold(0u8, |v, &c| match c {
        b'0' | b'1' => Some((v << 1) | (c - b'0')),
        _ => None,
    })
}

/// The periodic TAU timer T3412 (3GPP TS 24.008 GPRS Timer 3), as the one-byte
/// code `AT+CPSMS` and `+CEREG` carry: bits 8-6 the unit (10 min, 1 h, 10 h,
/// 2 s, 30 s, 1 min, 320 h, deactivated), bits 5-1 a count 0-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeriodicTau(pub(crate) u8);

impl PeriodicTau {
    /// Timer deactivated (`"11100000"`).
    pub const DEACTIVATED: Self = Self(0b111_00000);

    /// The code as it is (any byte is a valid code).
    pub const fn from_code(code: u8) -> Self {
        Self(code)
    }

    /// The shortest code at least `secs` long, in the finest unit that holds
    /// it (`3600` -> 6 x 10 min); `None` beyond 31 x 320 h.
    pub fn from_secs(secs: u32) -> Option<Self> {
        timer_code(&T3412_UNITS, &T3412_ORDER, secs).map(Self)
    }

    /// The code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// Its length in seconds; `None` when deactivated.
    pub fn secs(self) -> Option<u32> {
        timer_secs(&T3412_UNITS, self.0)
    }
}

/// The active time T3324 (3GPP TS 24.008 GPRS Timer 2), as the one-byte code
/// `AT+CPSMS` and `+CEREG` carry: bits 8-6 the unit (2 s, 1 min, 6 min;
/// deactivated), bits 5-1 a count 0-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActiveTime(pub(crate) u8);

impl ActiveTime {
    /// Timer deactivated (`"11100000"`): no PSM.
    pub const DEACTIVATED: Self = Self(0b111_00000);

    /// The code as it is (any byte is a valid code).
    pub const fn from_code(code: u8) -> Self {
        Self(code)
    }

    /// The shortest code at least `secs` long, in the finest unit that holds
    /// it (`10` -> 5 x 2 s); `None` beyond 31 x 6 min.
    pub fn from_secs(secs: u32) -> Option<Self> {
        timer_code(&T3324_UNITS, &T3324_ORDER, secs).map(Self)
    }

    /// The code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// Its length in seconds; `None` when deactivated.
    pub fn secs(self) -> Option<u32> {
        timer_secs(&T3324_UNITS, self.0)
    }
}

/// The two PSM timers: requested (`AT+CPSMS`) or granted by the network
/// (`+CEREG` with `<n>` 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PsmTimers {
    /// T3412: how long the module may stay in PSM before its periodic TAU.
    pub periodic_tau: PeriodicTau,
    /// T3324: how long the module stays reachable (idle) after a release
    /// before it enters PSM.
    pub active_time: ActiveTime,
}

/// An eDRX cycle (NB-S1), the half-byte code of `AT+CEDRXS`: `0010` 20.48 s,
/// `0011` 40.96 s, `0101` 81.92 s, `1001` 163.84 s, `1010`-`1111` 327.68 s
/// doubling up to 10485.76 s. Codes the manual leaves out read as `0010`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EdrxCycle(pub(crate) u8);

impl EdrxCycle {
    /// The code (its low four bits).
    pub const fn from_code(code: u8) -> Self {
        Self(code & 0x0f)
    }

    /// The code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The cycle in milliseconds (20480 to 10485760).
    pub fn millis(self) -> u32 {
        let doublings = match self.0 {
            3 => 1,
            5 => 2,
            9..=15 => self.0 - 6,
            _ => 0,
        };
        20_480 << doublings
    }
}

/// The paging time window of eDRX (NB-S1): (code + 1) x 2.56 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PagingWindow(pub(crate) u8);

impl PagingWindow {
    /// The code (its low four bits).
    pub const fn from_code(code: u8) -> Self {
        Self(code & 0x0f)
    }

    /// The code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The window in milliseconds (2560 to 40960).
    pub fn millis(self) -> u32 {
        (u32::from(self.0) + 1) * 2_560
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_codes_encode_and_decode_as_the_manual_writes_them() {
        // The manual's examples.
        assert_eq!(PeriodicTau::from_code(0b010_00111).secs(), Some(70 * 3600));
        assert_eq!(ActiveTime::from_code(0b001_00100).secs(), Some(4 * 60));
        assert_eq!(PeriodicTau::from_code(0b001_00001).secs(), Some(3600));
        assert_eq!(ActiveTime::from_code(0b000_00101).secs(), Some(10));
        assert_eq!(PeriodicTau::DEACTIVATED.secs(), None);
        assert_eq!(ActiveTime::DEACTIVATED.secs(), None);
        assert_eq!(
            PeriodicTau::from_code(0b110_11111).secs(),
            Some(31 * 320 * 3600)
        );
        // Encoding: the finest unit that holds the value, rounded up.
        assert_eq!(
            ActiveTime::from_secs(10).map(ActiveTime::code),
            Some(0b000_00101)
        );
        assert_eq!(
            ActiveTime::from_secs(11).map(ActiveTime::code),
            Some(0b000_00110)
        );
        assert_eq!(
            ActiveTime::from_secs(62).map(ActiveTime::code),
            Some(0b000_11111)
        );
        assert_eq!(
            ActiveTime::from_secs(63).map(ActiveTime::code),
            Some(0b001_00010)
        );
        assert_eq!(ActiveTime::from_secs(31 * 360 + 1), None);
        assert_eq!(
            PeriodicTau::from_secs(60).map(PeriodicTau::code),
            Some(0b011_11110)
        );
        assert_eq!(
            PeriodicTau::from_secs(3600).map(PeriodicTau::code),
            Some(0b000_00110)
        );
        assert_eq!(
            PeriodicTau::from_secs(86_400).map(PeriodicTau::code),
            Some(0b001_11000)
        );
        for s in [0, 1, 59, 61, 1_000, 7_200, 100_000, 5_000_000] {
            let c = PeriodicTau::from_secs(s).unwrap();
            assert!(c.secs().unwrap() >= s, "{s}");
        }
        assert_eq!(PeriodicTau::from_secs(31 * 1_152_000 + 1), None);
    }
}
