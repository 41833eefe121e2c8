//! PURE: the rate of a policy, as written (`tokensPerSecond`, or `tokens` per `per`) and as a
//! person reads it (`2/s`, `5/1m`).

use hrl_plugin_config::{MAX_PERIOD_SECONDS, MIN_PERIOD_SECONDS};

/// The seconds in a `per` duration: whole seconds in h/m/s units (`30s`, `1m`, `1h30m`), the
/// subset of Gateway API durations a token period needs, from 1s to 24h. Err is the rule.
pub fn parse_period(text: &str) -> Result<u32, String> {
    const RULE: &str = "must be a duration of whole seconds such as 30s, 1m, 1h or 1h30m";
    if text.is_empty() || text.len() > 16 {
        return Err(RULE.into());
    }
    let mut seconds: u64 = 0;
    let mut digits: u64 = 0;
    let mut have_digits = false;
    for byte in text.bytes() {
        match byte {
            b'0'..=b'9' => {
                digits = digits
                    .saturating_mul(10)
                    .saturating_add(u64::from(byte - b'0'));
                have_digits = true;
            }
            b'h' | b'm' | b's' if have_digits => {
                let unit = match byte {
                    b'h' => 3600,
                    b'm' => 60,
                    _ => 1,
                };
                seconds = seconds.saturating_add(digits.saturating_mul(unit));
                digits = 0;
                have_digits = false;
            }
            _ => return Err(RULE.into()),
        }
    }
    if have_digits {
        return Err(RULE.into());
    }
    match u32::try_from(seconds) {
        Ok(s) if (MIN_PERIOD_SECONDS..=MAX_PERIOD_SECONDS).contains(&s) => Ok(s),
        _ => Err("must be between 1s and 24h".into()),
    }
}

/// `tokens` per `period_seconds` as a person reads it: `2/s`, `5/1m`, `1000/1h`, `7/90s`.
pub fn display(tokens: u32, period_seconds: u32) -> String {
    let period = match period_seconds {
        1 => "s".to_string(),
        p if p % 3600 == 0 => format!("{}h", p / 3600),
        p if p % 60 == 0 => format!("{}m", p / 60),
        p => format!("{p}s"),
    };
    format!("{tokens}/{period}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_to_whole_seconds_within_bounds() {
        for (text, seconds) in [
            ("1s", 1),
            ("30s", 30),
            ("1m", 60),
            ("1h", 3600),
            ("1h30m", 5400),
            ("90s", 90),
            ("24h", 86_400),
            ("23h59m60s", 86_400),
        ] {
            assert_eq!(parse_period(text), Ok(seconds), "{text}");
        }
        for text in ["", "1", "m", "1ms", "1.5h", "1d", "-1s", "1 m", "1M"] {
            assert!(parse_period(text).is_err(), "{text}");
        }
        for text in ["0s", "24h1s", "25h", "99999h"] {
            assert_eq!(
                parse_period(text),
                Err("must be between 1s and 24h".to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn rates_read_as_tokens_per_period() {
        assert_eq!(display(2, 1), "2/s");
        assert_eq!(display(5, 60), "5/1m");
        assert_eq!(display(1000, 3600), "1000/1h");
        assert_eq!(display(10_000, 86_400), "10000/24h");
        assert_eq!(display(7, 90), "7/90s");
        assert_eq!(display(3, 5400), "3/90m");
    }
}
