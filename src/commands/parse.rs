//! Small parsers for information lines.

/// The bodies of every line of `resp` that starts with `prefix`.
pub(crate) fn lines_with<'a>(
    resp: &'a [u8],
    prefix: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    resp.split(|&b| b == b'\n').filter_map(move |l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let body = l.strip_prefix(prefix)?;
        Some(body.strip_prefix(b" ").unwrap_or(body))
    })
}

/// Splits a body into fields at commas outside quotes; quotes are removed.
pub(crate) struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Self { rest: Some(body) }
    }

    /// Everything not read yet, as one field (quotes around it removed): for a
    /// last field that may itself hold commas when the modem does not quote it.
    pub(crate) fn rest(&mut self) -> Option<&'a [u8]> {
        let s = self.rest.take()?;
        Some(
            match s.strip_prefix(b"\"").and_then(|i| i.strip_suffix(b"\"")) {
                Some(inner) => inner,
                None => s,
            },
        )
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        if let Some(inner) = s.strip_prefix(b"\"") {
            // Quoted: up to the quote that is followed by a comma or the end.
            // (Indices from the iteration and `get`: no bounds check.)
            for (i, &b) in inner.iter().enumerate() {
                if b != b'"' {
                    continue;
                }
                match inner.get(i + 1) {
                    None => {
                        self.rest = None;
                        return Some(&inner[..i]);
                    }
                    Some(b',') => {
                        self.rest = inner.get(i + 2..);
                        return Some(&inner[..i]);
                    }
                    Some(_) => {}
                }
            }
            self.rest = None;
            Some(inner)
        } else {
            match s.iter().position(|&b| b == b',') {
                Some(c) => {
                    self.rest = s.get(c + 1..);
                    s.get(..c)
                }
                None => {
                    self.rest = None;
                    Some(s)
                }
            }
        }
    }
}

pub(crate) fn int<T: TryFrom<i64>>(field: Option<&[u8]>) -> Result<T, atat::Error> {
    field
        .and_then(crate::urc::parse_int)
        .and_then(|v| T::try_from(v).ok())
        .ok_or(atat::Error::Parse)
}

pub(crate) fn string<const N: usize>(
    field: Option<&[u8]>,
) -> Result<heapless::String<N>, atat::Error> {
    let f = field.ok_or(atat::Error::Parse)?;
    let s = core::str::from_utf8(f).map_err(|_| atat::Error::Parse)?;
    heapless::String::try_from(s).map_err(|_| atat::Error::Parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_at_commas_outside_quotes() {
        let f: std::vec::Vec<&[u8]> = Fields::new(b"\"will\",1,\"a,b\",\"\",x").collect();
        assert_eq!(f, [&b"will"[..], b"1", b"a,b", b"", b"x"]);
    }

    #[test]
    fn rest_takes_an_unquoted_last_field_with_commas() {
        let mut f = Fields::new(b"1,0,0,t,gone, bye");
        assert_eq!(
            (f.next(), f.next(), f.next(), f.next()),
            (
                Some(&b"1"[..]),
                Some(&b"0"[..]),
                Some(&b"0"[..]),
                Some(&b"t"[..])
            )
        );
        assert_eq!(f.rest(), Some(&b"gone, bye"[..]));
        let mut f = Fields::new(b"\"t\",\"a, b\"");
        f.next();
        assert_eq!(f.rest(), Some(&b"a, b"[..]));
    }

    #[test]
    fn lines_with_finds_every_prefixed_line() {
        let r = b"+QMTOPEN: 0,\"h\",1\r\n+QMTOPEN: 3,\"g\",2";
        let v: std::vec::Vec<&[u8]> = lines_with(r, b"+QMTOPEN:").collect();
        assert_eq!(v, [&b"0,\"h\",1"[..], b"3,\"g\",2"]);
    }
}
