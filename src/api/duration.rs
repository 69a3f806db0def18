//! The one duration grammar of the project: what the CRDs' CEL rules accept
//! ([`super::rules::DURATION_PATTERN`], Go's units without a sign), parsed
//! the same way everywhere — `spec.interval` and `spec.fullResyncInterval` of
//! a mirror, the command line's duration flags and the schema check the
//! one-shot commands run on objects read from files.
//!
//! A duration is one or more `<number><unit>` terms, the number a decimal
//! with an optional fraction (`1.5`), the unit one of `ns`, `us`, `ms`, `s`,
//! `m`, `h`: `90s`, `10m`, `1.5h`, `1h30m`, `0s`. Anything else (`10`, `1d`,
//! `-5m`, `1 h`, `.5h`) is refused with a message saying what is accepted.
//! Like Go (and CEL's `duration()`, which the rules call), the value is
//! counted in whole nanoseconds (a finer fraction is dropped) and is at most
//! [`MAX_NANOS`], a little over 2562047h (292 years).

use std::fmt;
use std::time::Duration;

/// The units, longest first where one is a prefix of another, with their
/// length in nanoseconds.
const UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The longest duration: Go's, 2^63 - 1 nanoseconds.
pub const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a text is not a duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    why: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a duration ({}): write numbers with units ns, us, ms, s, m or h, \
             such as 90s, 10m, 1.5h or 1h30m",
            self.text, self.why
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration as the CRDs' rule accepts it; see the module documentation.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = |why| DurationError {
        text: text.to_string(),
        why,
    };
    if text.is_empty() {
        return Err(error("it is empty"));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if whole_len == 0 {
            return Err(error("each unit needs a number before it, such as 5m"));
        }
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let mut fraction = "";
        if let Some(after_point) = rest.strip_prefix('.') {
            let len = after_point
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_point.len());
            if len == 0 {
                return Err(error("a decimal point needs digits after it, such as 1.5h"));
            }
            fraction = &after_point[..len];
            rest = &after_point[len..];
        }
        let Some((unit, nanos)) = UNITS
            .iter()
            .copied()
            .filter(|(unit, _)| rest.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
        else {
            return Err(error(if rest.is_empty() {
                "the last number has no unit"
            } else {
                "it has an unknown unit"
            }));
        };
        rest = &rest[unit.len()..];
        let too_long = || error("it is longer than 2562047h, the longest duration");
        let whole: u128 = whole.parse().map_err(|_| too_long())?;
        let mut term = whole.checked_mul(nanos).ok_or_else(too_long)?;
        // The fraction, in whole nanoseconds of this unit.
        let mut scale = nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            term += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(term).ok_or_else(too_long)?;
        if total > MAX_NANOS {
            return Err(too_long());
        }
    }
    let seconds = (total / 1_000_000_000) as u64;
    Ok(Duration::new(seconds, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::rules::DURATION_PATTERN;

    #[test]
    fn durations_parse_as_the_crds_accept_them() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Option<Duration>)] = &[
            ("1.5h", Some(ms(5_400_000))),
            ("90m", Some(ms(5_400_000))),
            ("1h30m", Some(ms(5_400_000))),
            ("0s", Some(Duration::ZERO)),
            ("250ms", Some(ms(250))),
            ("30s", Some(ms(30_000))),
            ("1m", Some(ms(60_000))),
            ("10m", Some(ms(600_000))),
            ("24h", Some(ms(86_400_000))),
            ("1.25s", Some(ms(1_250))),
            ("1ms", Some(ms(1))),
            ("1m1s", Some(ms(61_000))),
            ("2h0.5m", Some(ms(7_230_000))),
            ("1500us", Some(Duration::from_micros(1_500))),
            ("7ns", Some(Duration::from_nanos(7))),
            ("0.0000000001s", Some(Duration::ZERO)),
            ("", None),
            ("10", None),
            ("s", None),
            ("1d", None),
            ("-1s", None),
            ("+1s", None),
            (".5h", None),
            ("1.h", None),
            ("1 h", None),
            (" 1h", None),
            ("1h ", None),
            ("1H", None),
            ("1µs", None),
            ("1hh", None),
            ("1h30", None),
            ("2562047h", Some(Duration::from_secs(2_562_047 * 3600))),
            ("2562048h", None),
            ("99999999999999999999999999999999999999999h", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).ok(), *expected, "{text:?}");
        }
    }

    #[test]
    fn a_refusal_says_what_is_wrong_and_what_is_accepted() {
        let cases = [
            ("", "it is empty"),
            ("10", "the last number has no unit"),
            ("1d", "unknown unit"),
            ("m", "needs a number"),
            ("1.h", "digits after it"),
        ];
        for (text, why) in cases {
            let message = parse_duration(text).unwrap_err().to_string();
            assert!(message.contains(why), "{text:?}: {message}");
            assert!(
                message.contains("such as 90s, 10m, 1.5h or 1h30m"),
                "{message}"
            );
            assert!(message.starts_with(&format!("{text:?} is not a duration")));
        }
    }

    /// The CRDs' regular expression and this parser accept the same strings,
    /// hand-picked and generated from the grammar's pieces (short enough to
    /// stay within [`MAX_NANOS`], which the rule's `duration()` enforces).
    #[test]
    fn the_parser_and_the_crd_pattern_agree() {
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        let numbers = ["0", "1", "5", "12", "1.5", "0.25"];
        let units = ["h", "m", "s", "ms", "us", "ns"];
        let noise = [
            "0", "1", ".", ".5", "h", "m", "s", "µs", "d", "-", " ", "H", "mm", "hs", "sm",
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        // Terms of the grammar, now and then one piece of noise instead.
        let mut texts: Vec<String> = (0..20_000)
            .map(|_| {
                (0..rng.usize(1..4))
                    .map(|_| {
                        if rng.u8(..10) == 0 {
                            noise[rng.usize(..noise.len())].to_string()
                        } else {
                            let number = numbers[rng.usize(..numbers.len())];
                            format!("{number}{}", units[rng.usize(..units.len())])
                        }
                    })
                    .collect()
            })
            .collect();
        texts.extend(["1.5h", "90m", "1h30m", "0s", "", "1.h", ".5h"].map(String::from));
        let mut accepted = 0;
        for text in &texts {
            let parsed = parse_duration(text).is_ok();
            assert_eq!(
                parsed,
                pattern.is_match(text),
                "{text:?}: the parser says {parsed}, the CRD pattern the opposite"
            );
            accepted += usize::from(parsed);
        }
        let refused = texts.len() - accepted;
        assert!(
            accepted > 1_000 && refused > 1_000,
            "the generator reaches both sides: {accepted} accepted, {refused} refused"
        );
    }
}
