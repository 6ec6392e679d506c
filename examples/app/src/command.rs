//! The commands the device takes on its command topic: short text payloads.
//!
//! | payload | effect | reply on the ack topic |
//! |---|---|---|
//! | `led on`, `led off`, `led toggle` | switches the user LED | `ok led on` / `ok led off` |
//! | `ping` | nothing | `pong` |
//! | `report` | publishes a telemetry message now | `ok report` |
//! | `period <s>` | telemetry every `<s>` seconds (1-86400) | `ok period <s>` |
//! | anything else | nothing | `error: ...` |

/// A parsed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command {
    /// `led on` / `led off`.
    Led(bool),
    /// `led toggle`.
    ToggleLed,
    /// `ping`.
    Ping,
    /// `report`.
    Report,
    /// `period <seconds>`.
    Period(u32),
}

/// Why a payload is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommandError {
    /// Not text, or no command this device knows.
    Unknown,
    /// A known command with a bad argument.
    BadArgument,
}

impl CommandError {
    /// The reply the device publishes.
    pub fn reply(self) -> &'static str {
        match self {
            CommandError::Unknown => "error: unknown command",
            CommandError::BadArgument => "error: bad argument",
        }
    }
}

/// Longest telemetry period a command may set, seconds.
pub const MAX_PERIOD_S: u32 = 86_400;

/// Parses a command payload (surrounding white space ignored, ASCII case-insensitive).
pub fn parse(payload: &[u8]) -> Result<Command, CommandError> {
    let text = core::str::from_utf8(payload).map_err(|_| CommandError::Unknown)?;
    let mut words = text.split_ascii_whitespace();
    let verb = words.next().ok_or(CommandError::Unknown)?;
    let arg = words.next();
    if words.next().is_some() {
        return Err(CommandError::BadArgument);
    }
    let is = |w: &str| verb.eq_ignore_ascii_case(w);
    let arg_is = |w: &str| arg.is_some_and(|a| a.eq_ignore_ascii_case(w));
    match (arg, verb) {
        (None, _) if is("ping") => Ok(Command::Ping),
        (None, _) if is("report") => Ok(Command::Report),
        (Some(_), _) if is("led") && arg_is("on") => Ok(Command::Led(true)),
        (Some(_), _) if is("led") && arg_is("off") => Ok(Command::Led(false)),
        (Some(_), _) if is("led") && arg_is("toggle") => Ok(Command::ToggleLed),
        (Some(s), _) if is("period") => match s.parse::<u32>() {
            Ok(p) if (1..=MAX_PERIOD_S).contains(&p) => Ok(Command::Period(p)),
            _ => Err(CommandError::BadArgument),
        },
        (_, _) if is("led") || is("period") || is("ping") || is("report") => {
            Err(CommandError::BadArgument)
        }
        _ => Err(CommandError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b"led on"), Ok(Command::Led(true)));
        assert_eq!(parse(b"  LED Off\r\n"), Ok(Command::Led(false)));
        assert_eq!(parse(b"led toggle"), Ok(Command::ToggleLed));
        assert_eq!(parse(b"ping"), Ok(Command::Ping));
        assert_eq!(parse(b"report"), Ok(Command::Report));
        assert_eq!(parse(b"period 30"), Ok(Command::Period(30)));
        assert_eq!(parse(b"period 0"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"period 86401"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"period x"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"led"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"led blue"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"ping now"), Err(CommandError::BadArgument));
        assert_eq!(parse(b"reboot"), Err(CommandError::Unknown));
        assert_eq!(parse(b""), Err(CommandError::Unknown));
        assert_eq!(parse(&[0xff, 0xfe]), Err(CommandError::Unknown));
    }
}
