//! Times: RFC 3339 and epoch numbers read, every stored time written one way (RFC 3339 UTC, microseconds).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Formats a time the way every stored time is written: RFC 3339, UTC, microseconds, fixed width.
pub fn format_time(time: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(27);
    push_time(&mut out, &time.naive_utc(), 6, true);
    out
}

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS.f` with `digits` (1 to 9) fractional digits, cut, not rounded, and a
/// `Z` if `zone`: what chrono's `%Y-%m-%dT%H:%M:%S%.9f` gives, cut to `digits`.
///
/// Written digit by digit: every record formats two or three times, and chrono's `format` parses its pattern
/// and goes through `fmt` each time (a tenth of normalization's cost). Years outside 0..=9999 and leap seconds
/// take chrono's way, which writes them as before.
pub fn push_time(out: &mut String, time: &NaiveDateTime, digits: usize, zone: bool) {
    use chrono::{Datelike, Timelike};
    let digits = digits.clamp(1, 9);
    let year = time.year();
    let nanos = time.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        let text = time.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
        out.push_str(&text[..text.len() - (9 - digits)]);
    } else {
        let mut text = [0u8; 30];
        let fields: [(u32, usize, u8); 7] = [
            (year as u32, 4, b'-'),
            (time.month(), 2, b'-'),
            (time.day(), 2, b'T'),
            (time.hour(), 2, b':'),
            (time.minute(), 2, b':'),
            (time.second(), 2, b'.'),
            (nanos / 10u32.pow((9 - digits) as u32), digits, 0),
        ];
        let mut at = 0;
        for (mut value, width, after) in fields {
            for place in (at..at + width).rev() {
                text[place] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            text[at + width] = after;
            at += width + 1;
        }
        out.extend(text[..at - 1].iter().map(|&byte| byte as char));
    }
    if zone {
        out.push('Z');
    }
}

pub(super) fn in_range(time: &DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1..=9999).contains(&time.year())
}

/// Parses RFC 3339 (also with a space for `T`, or without an offset, taken as UTC) or epoch digits.
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc)).filter(in_range);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc()).filter(in_range);
        }
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        return parse_epoch(text);
    }
    None
}

/// Reads an epoch number as seconds, milliseconds, microseconds or nanoseconds by its magnitude.
pub fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let micros = if value < 1e11 {
        value * 1e6
    } else if value < 1e14 {
        value * 1e3
    } else if value < 1e17 {
        value
    } else {
        value / 1e3
    };
    if micros > 253_402_300_799_999_999.0 {
        return None;
    }
    // Integers of up to 17 digits are exact in f64's 53-bit mantissa after scaling only when small; use
    // integer arithmetic where the text is an integer.
    let micros = match text.parse::<i64>() {
        Ok(int) if value < 1e11 => int.checked_mul(1_000_000)?,
        Ok(int) if value < 1e14 => int.checked_mul(1_000)?,
        Ok(int) if value < 1e17 => int,
        Ok(int) => int / 1_000,
        Err(_) => micros.round() as i64,
    };
    Utc.timestamp_micros(micros).single().filter(in_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_times_are_read_by_magnitude() {
        let expected = "2023-11-14T22:13:20.000000Z";
        for text in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
            "1700000000.0",
        ] {
            assert_eq!(format_time(parse_epoch(text).unwrap()), expected, "{text}");
        }
        assert_eq!(
            format_time(parse_epoch("1700000000.5").unwrap()),
            "2023-11-14T22:13:20.500000Z"
        );
        assert!(parse_epoch("-5").is_none());
        assert!(parse_epoch("1e400").is_none());
        assert!(parse_epoch("99999999999999999999999").is_none());
    }

    #[test]
    fn times_are_written_as_chrono_writes_them_at_every_precision() {
        let times = [
            "2023-11-14T22:13:20.123456789Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "1969-12-31T23:59:59.000000001Z",
        ];
        for text in times {
            let time = DateTime::parse_from_rfc3339(text).unwrap().naive_utc();
            let full = time.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
            for digits in 1..=9 {
                let mut out = String::new();
                push_time(&mut out, &time, digits, digits % 2 == 0);
                let zone = if digits % 2 == 0 { "Z" } else { "" };
                assert_eq!(
                    out,
                    format!("{}{zone}", &full[..full.len() - (9 - digits)]),
                    "{text} {digits}"
                );
            }
        }
        // Outside 0..=9999 and on a leap second, chrono's text.
        let far = NaiveDateTime::parse_from_str("+10000-01-01T00:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        let mut out = String::new();
        push_time(&mut out, &far, 3, true);
        assert_eq!(out, "+10000-01-01T00:00:00.000Z");
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        let mut out = String::new();
        push_time(&mut out, &leap, 6, true);
        assert_eq!(out, "2016-12-31T23:59:60.500000Z");
    }

    #[test]
    fn rfc3339_times_are_normalized_to_utc() {
        let t = parse_time_text("2024-03-01T10:00:00.123+02:00").unwrap();
        assert_eq!(format_time(t), "2024-03-01T08:00:00.123000Z");
        assert_eq!(
            format_time(parse_time_text("2024-03-01 10:00:00").unwrap()),
            "2024-03-01T10:00:00.000000Z"
        );
        assert!(parse_time_text("yesterday").is_none());
        assert!(parse_time_text("2024-13-01T00:00:00Z").is_none());
    }
}
