//! Text forms of datetime and duration values (docs/KEY-SPEC.md sections 4.2, 8, 8.1).

/// Parses an RFC 3339 date-time into `(seconds since the epoch rounded down, nanos)`.
/// Every year 0000 to 9999 is accepted, before the offset is applied (so
/// `9999-12-31T23:59:59-01:00` is an instant in year 10000 UTC).
pub fn parse_datetime(text: &str) -> Result<(i64, u32), String> {
    let t = split_rfc3339(text)?;
    if !(1..=12).contains(&t.month) {
        return Err(format!("month {:02} does not exist", t.month));
    }
    if t.day == 0 || t.day > days_in_month(t.year, t.month) {
        return Err(format!(
            "the date {:04}-{:02}-{:02} does not exist",
            t.year, t.month, t.day
        ));
    }
    if t.hour > 23 || t.minute > 59 || t.second > 59 {
        return Err(format!(
            "the time {:02}:{:02}:{:02} does not exist (hours 00 to 23, minutes and seconds \
             00 to 59)",
            t.hour, t.minute, t.second
        ));
    }
    // The fraction is never negative and offsets are whole minutes, so these whole seconds
    // are already rounded towards negative infinity.
    let seconds = days_from_civil(t.year, t.month, t.day) * 86_400
        + t.hour * 3_600
        + t.minute * 60
        + t.second
        - t.offset_seconds;
    Ok((seconds, t.nanos))
}

/// The fields of an RFC 3339 date-time, as written (not yet range-checked, except the
/// offset and the fraction).
struct Rfc3339 {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
    /// East of UTC is positive.
    offset_seconds: i64,
}

/// Checks the exact RFC 3339 shape and splits it into its fields.
fn split_rfc3339(text: &str) -> Result<Rfc3339, String> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
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
    let mut nanos = 0u32;
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let n = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err("the fraction of a second must have 1 to 9 digits".into());
        }
        nanos = after_dot[..n]
            .iter()
            .chain(std::iter::repeat_n(&b'0', 9 - n))
            .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        rest = &after_dot[n..];
    }
    // RFC 3339 time-numoffset: hours 00-23, minutes 00-59.
    let offset_seconds = match rest {
        b"Z" | b"z" => Some(0),
        [sign, h1, h2, b':', m1, m2]
            if matches!(sign, b'+' | b'-')
                && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                && (*h1, *h2) <= (b'2', b'3')
                && *m1 <= b'5' =>
        {
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let magnitude = hours * 3_600 + minutes * 60;
            Some(if *sign == b'-' { -magnitude } else { magnitude })
        }
        _ => None,
    };
    let Some(offset_seconds) = offset_seconds else {
        return Err(format!("{shape} (the offset must be Z or +HH:MM/-HH:MM)"));
    };
    Ok(Rfc3339 {
        year: number(0..4),
        month: number(5..7),
        day: number(8..10),
        hour: number(11..13),
        minute: number(14..16),
        second: number(17..19),
        nanos,
        offset_seconds,
    })
}

/// Days in a month of the proleptic Gregorian calendar (year 0000 is a leap year).
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, for years 0 and
/// later (the 400-year cycle count of H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March, so the leap day is the last day of the year; year 0000's
    // January and February belong to year -1, which the +400 keeps non-negative.
    let y = if month <= 2 { year - 1 } else { year } + 400;
    let era = y / 400;
    let year_of_era = y % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era - 1) * 146_097 + day_of_era - 719_468
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
        // Trailing zeros change nothing; without them an exact fraction has at most 9 digits.
        let frac_digits = frac_digits.trim_end_matches('0');
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

    /// Issue 12 item 15: every year 0000 to 9999 is accepted, before the offset, up to the
    /// last nanosecond of 9999 and into year 10000 UTC with a negative offset.
    #[test]
    fn datetimes_cover_years_0000_to_9999() {
        let cases: &[(&str, (i64, u32))] = &[
            ("0000-01-01T00:00:00Z", (-62167219200, 0)),
            ("0000-01-01T00:00:00+23:59", (-62167219200 - 86340, 0)),
            ("0000-02-29T00:00:00Z", (-62167219200 + 59 * 86400, 0)),
            ("9999-12-30T22:00:01Z", (253402207201, 0)),
            ("9999-12-31T00:00:00Z", (253402214400, 0)),
            (
                "9999-12-31T23:59:59.999999999Z",
                (253402300799, 999_999_999),
            ),
            ("9999-12-31T23:59:59-23:59", (253402300799 + 86340, 0)),
            ("2000-02-29T12:00:00Z", (951825600, 0)),
            ("1970-01-01T00:00:00-00:00", (0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_datetime(text), Ok(*want), "{text}");
        }
        for bad in [
            "1900-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
        ] {
            let err = parse_datetime(bad).unwrap_err();
            assert!(err.contains("does not exist"), "{bad}: {err}");
        }
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
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+00:60",
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
            ("1.0000000000000000000000s", 1_000_000_000),
            ("PT1.5H", 5400 * s),
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
