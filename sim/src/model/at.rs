//! Parsing of AT command parameters.

/// What the modem answers `ERROR` to (a bad parameter, a command the state does not allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused;

/// A command's outcome: `Err` answers `ERROR`.
pub(crate) type Res = Result<(), Refused>;

/// One comma-separated parameter of a write command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(i64),
    Str(Vec<u8>),
    Empty,
}

/// A cursor over the parameter text of a write command (after the `=`).
pub(crate) struct Params<'a> {
    s: &'a [u8],
    pos: usize,
    /// A separator was consumed, so one more (possibly empty) parameter follows.
    pending: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Params {
            s,
            pos: 0,
            pending: false,
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos] == b' ' {
            self.pos += 1;
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        !self.pending && self.s[self.pos..].iter().all(|&c| c == b' ')
    }

    /// The next parameter, `None` at the end, `Err` on a syntax error.
    pub(crate) fn next_param(&mut self) -> Option<Result<Param, ()>> {
        if self.at_end() {
            return None;
        }
        self.pending = false;
        self.skip_ws();
        let p = if self.s.get(self.pos) == Some(&b'"') {
            let start = self.pos + 1;
            let Some(len) = self.s[start..].iter().position(|&c| c == b'"') else {
                return Some(Err(()));
            };
            self.pos = start + len + 1;
            Param::Str(self.s[start..start + len].to_vec())
        } else {
            let start = self.pos;
            while self.pos < self.s.len() && self.s[self.pos] != b',' {
                self.pos += 1;
            }
            let tok = trim(&self.s[start..self.pos]);
            if tok.is_empty() {
                Param::Empty
            } else {
                match std::str::from_utf8(tok)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    Some(v) => Param::Int(v),
                    None => return Some(Err(())),
                }
            }
        };
        self.skip_ws();
        match self.s.get(self.pos) {
            None => {}
            Some(b',') => {
                self.pos += 1;
                self.pending = true;
            }
            Some(_) => return Some(Err(())),
        }
        Some(Ok(p))
    }

    /// Everything not parsed yet (after the last separator consumed).
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.s[self.pos..]
    }

    /// All remaining parameters.
    pub(crate) fn collect_all(mut self) -> Result<Vec<Param>, ()> {
        let mut v = Vec::new();
        while let Some(p) = self.next_param() {
            v.push(p?);
        }
        Ok(v)
    }
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&c| c != b' ').map_or(start, |e| e + 1);
    &s[start..end]
}

pub(crate) fn int_in(p: Option<&Param>, lo: i64, hi: i64) -> Result<i64, ()> {
    match p {
        Some(Param::Int(v)) if (lo..=hi).contains(v) => Ok(*v),
        _ => Err(()),
    }
}

pub(crate) fn string(p: Option<&Param>) -> Result<Vec<u8>, ()> {
    match p {
        Some(Param::Str(s)) => Ok(s.clone()),
        _ => Err(()),
    }
}

pub(crate) fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s: Vec<u8> = s
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|pair| Some(val(pair[0])? << 4 | val(pair[1])?))
        .collect()
}

pub(crate) fn hex_encode_upper(data: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut v = Vec::with_capacity(data.len() * 2);
    for b in data {
        v.push(HEX[(b >> 4) as usize]);
        v.push(HEX[(b & 15) as usize]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let v = Params::new(b"0,\"a,b\", 12 ,,\"\"").collect_all().unwrap();
        assert_eq!(
            v,
            vec![
                Param::Int(0),
                Param::Str(b"a,b".to_vec()),
                Param::Int(12),
                Param::Empty,
                Param::Str(vec![])
            ]
        );
        assert!(Params::new(b"0,x").collect_all().is_err());
        assert!(Params::new(b"\"abc").collect_all().is_err());
        assert_eq!(
            Params::new(b"1,").collect_all().unwrap(),
            vec![Param::Int(1), Param::Empty]
        );
        assert_eq!(
            Params::new(b"-1").collect_all().unwrap(),
            vec![Param::Int(-1)]
        );
    }

    #[test]
    fn hex() {
        assert_eq!(hex_decode(b"48656c6C6F").unwrap(), b"Hello");
        assert!(hex_decode(b"4").is_none());
        assert!(hex_decode(b"zz").is_none());
        assert_eq!(hex_encode_upper(b"\x01\xab"), b"01AB");
    }
}
