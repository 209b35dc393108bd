//! Numbers as ids: a JSON number's exact decimal text.

use super::json::{self, Json};

/// The decimal text of a JSON number: integers exactly as written, exponents expanded (`1.5e3` is `1500`).
/// `None` when the exponent would write out more than 400 digits, and for text that is not a JSON number.
pub fn decimal_text(number: &str) -> Option<String> {
    if !matches!(json::parse(number), Ok(Json::Number(whole)) if whole.len() == number.len()) {
        return None;
    }
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    if !unsigned.contains(['.', 'e', 'E']) {
        return Some(number.to_owned());
    }
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    // The decimal point sits after `point` digits.
    let point = int_part.len() as i64 + exponent;
    if !(-400..=400).contains(&point) || digits.len() > 400 {
        return None;
    }
    let (mut int_digits, frac_digits) = if point <= 0 {
        ("0".to_owned(), format!("{}{}", "0".repeat((-point) as usize), digits))
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (digits[..point as usize].to_owned(), digits[point as usize..].to_owned())
    };
    let trimmed_int = int_digits.trim_start_matches('0');
    int_digits = if trimmed_int.is_empty() {
        "0".into()
    } else {
        trimmed_int.to_owned()
    };
    let frac_digits = frac_digits.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    Some(if frac_digits.is_empty() {
        format!("{sign}{int_digits}")
    } else {
        format!("{sign}{int_digits}.{frac_digits}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_expands_exponents_and_keeps_integers_exactly() {
        assert_eq!(
            decimal_text("123456789012345678901234567890").unwrap(),
            "123456789012345678901234567890"
        );
        assert_eq!(decimal_text("-42").unwrap(), "-42");
        assert_eq!(decimal_text("1.5e3").unwrap(), "1500");
        assert_eq!(decimal_text("1E-2").unwrap(), "0.01");
        assert_eq!(decimal_text("12.50").unwrap(), "12.5");
        assert_eq!(decimal_text("0.0").unwrap(), "0");
        assert_eq!(decimal_text("-1.25e1").unwrap(), "-12.5");
        assert_eq!(decimal_text("1e999999"), None);
        assert_eq!(decimal_text("1e99999999999999999999"), None);
    }

    #[test]
    fn a_zero_exponent_is_still_written_out_as_decimal_text() {
        assert_eq!(decimal_text("42E0").unwrap(), "42");
        assert_eq!(decimal_text("-7e+0").unwrap(), "-7");
        assert_eq!(decimal_text("120e-0").unwrap(), "120");
    }

    #[test]
    fn decimal_text_of_text_that_is_not_a_json_number_is_none_without_panicking() {
        for text in [
            "é.5e1", "1.é5e1", "1.2.3", " 1", "1 ", "", "e5", "1e", "+1", "0x10", "--1", "1e+",
        ] {
            assert_eq!(decimal_text(text), None, "{text:?}");
        }
    }
}
