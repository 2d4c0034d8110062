//! Text forms of datetime and duration values (docs/KEY-SPEC.md sections 4.2, 8, 8.1).

/// Parses an RFC 3339 date-time into `(seconds since the epoch rounded down, nanos)`.
pub fn parse_datetime(text: &str) -> Result<(i64, u32), String> {
    check_rfc3339_shape(text)?;
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e: jiff::Error| format!("not a valid date-time: {e}"))?;
    let mut seconds = ts.as_second();
    let mut nanos = ts.subsec_nanosecond();
    if nanos < 0 {
        seconds -= 1;
        nanos += 1_000_000_000;
    }
    Ok((seconds, nanos as u32))
}

/// Checks the exact RFC 3339 shape, which jiff alone is more lenient about (it accepts
/// time-zone annotations and turns second 60 into 59).
fn check_rfc3339_shape(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let shape = "expected an RFC 3339 date-time like 2024-05-01T12:30:00Z or \
                 2024-05-01T14:30:00.25+02:00";
    let head_ok = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !head_ok {
        return Err(shape.into());
    }
    if &b[17..19] == b"60" {
        return Err("leap seconds (second 60) are not accepted".into());
    }
    let mut rest = &b[19..];
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err("the fraction of a second must have 1 to 9 digits".into());
        }
        rest = &after_dot[n..];
    }
    let offset_ok = match rest {
        b"Z" | b"z" => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    };
    if !offset_ok {
        return Err(format!("{shape} (the offset must be Z or +HH:MM/-HH:MM)"));
    }
    Ok(())
}

/// Parses a duration string (ISO 8601 hours/minutes/seconds, or the short form) into
/// nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let total = if let Some(iso) = body.strip_prefix("PT") {
        parse_parts(
            iso,
            &[
                ("H", 3_600_000_000_000),
                ("M", 60_000_000_000),
                ("S", 1_000_000_000),
            ],
        )?
    } else {
        parse_parts(
            body,
            &[
                ("h", 3_600_000_000_000),
                ("ms", 1_000_000),
                ("us", 1_000),
                ("ns", 1),
                ("m", 60_000_000_000),
                ("s", 1_000_000_000),
            ],
        )?
    };
    let signed = if negative { -total } else { total };
    i64::try_from(signed).map_err(|_| "out of range (about ±292 years)".to_string())
}

/// Parses `<number><unit>` parts; units must appear largest first, each at most once, and
/// only the last part may have a fraction. Returns total nanoseconds.
fn parse_parts(mut text: &str, units: &[(&str, i128)]) -> Result<i128, String> {
    const HELP: &str = "expected a duration like 1h30m, 1.5s, 250ms or PT1H30M";
    if text.is_empty() {
        return Err(HELP.into());
    }
    let mut total: i128 = 0;
    let mut last_unit_ns = i128::MAX;
    let mut had_fraction = false;
    while !text.is_empty() {
        if had_fraction {
            return Err("only the last (smallest) unit may have a fraction".into());
        }
        let int_len = text.bytes().take_while(u8::is_ascii_digit).count();
        let mut frac_digits = "";
        let mut after = &text[int_len..];
        if let Some(rest) = after.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return Err(HELP.into());
            }
            frac_digits = &rest[..n];
            after = &rest[n..];
            had_fraction = true;
        }
        if int_len == 0 {
            return Err(HELP.into());
        }
        // Longest unit spelling first is guaranteed by the table order ("ms" before "m").
        let Some(&(unit, unit_ns)) = units.iter().find(|(u, _)| after.starts_with(u)) else {
            return Err(HELP.into());
        };
        if unit_ns >= last_unit_ns {
            return Err("units must go from largest to smallest, each at most once".into());
        }
        last_unit_ns = unit_ns;
        let whole: i128 = text[..int_len]
            .parse()
            .map_err(|_| "number too large".to_string())?;
        let mut part = whole
            .checked_mul(unit_ns)
            .ok_or_else(|| "out of range (about ±292 years)".to_string())?;
        if !frac_digits.is_empty() {
            if frac_digits.len() > 18 {
                return Err("a fraction finer than a nanosecond is not exact".into());
            }
            let frac: i128 = frac_digits.parse().map_err(|_| HELP.to_string())?;
            let scale = 10i128.pow(frac_digits.len() as u32);
            let scaled = frac * unit_ns;
            if scaled % scale != 0 {
                return Err("a fraction finer than a nanosecond is not exact".into());
            }
            part += scaled / scale;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= i64::MAX as i128 + 1)
            .ok_or_else(|| "out of range (about ±292 years)".to_string())?;
        text = &after[unit.len()..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_normalise_to_utc_with_floor_seconds() {
        assert_eq!(parse_datetime("2024-01-01T00:00:00Z"), Ok((1704067200, 0)));
        assert_eq!(
            parse_datetime("2024-01-01T01:00:00+01:00"),
            Ok((1704067200, 0))
        );
        assert_eq!(parse_datetime("2024-01-01 00:00:00z"), Ok((1704067200, 0)));
        assert_eq!(
            parse_datetime("1969-12-31T23:59:59.5Z"),
            Ok((-1, 500_000_000))
        );
        assert_eq!(
            parse_datetime("2024-01-01T00:00:00.123456789Z"),
            Ok((1704067200, 123_456_789))
        );
        assert_eq!(
            parse_datetime("0001-01-01T00:00:00Z"),
            Ok((-62135596800, 0))
        );
    }

    #[test]
    fn datetimes_reject_what_rfc3339_does_not_allow() {
        for bad in [
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00Z[Europe/Paris]",
            "2016-12-31T23:59:60Z",
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01T00:00:00.Z",
            "2024-02-30T00:00:00Z",
            "2024-01-01T00:00:00+0100",
            "24-01-01T00:00:00Z",
            "",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_are_exact_nanoseconds() {
        let s = 1_000_000_000i64;
        let cases: &[(&str, i64)] = &[
            ("PT1H30M", 5400 * s),
            ("PT0.5S", s / 2),
            ("-PT2S", -2 * s),
            ("PT1H0.25S", 3600 * s + s / 4),
            ("1h30m", 5400 * s),
            ("1.5s", 3 * s / 2),
            ("250ms", 250_000_000),
            ("-2s", -2 * s),
            ("1m1s1ms1us1ns", 61 * s + 1_001_001),
            ("0s", 0),
            ("0.000000001s", 1),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn durations_reject_ambiguity() {
        for bad in [
            "",
            "1",
            "1d",
            "P1D",
            "PT",
            "1s1h",
            "1s1s",
            "1.5m30s",
            "0.0000000001s",
            "1.s",
            ".5s",
            "1 h",
            "+1s",
            "PT1h",
            "10000000h",
            "--1s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
