//! The `every` of `[[maintenance]]` windows and `[[test_page]]` schedules: when a
//! recurring window opens. Weekly (`"Tue 09:00"`), daily (`"09:00"`) or monthly: an
//! ordinal weekday (`"1st Mon of Jan,Apr,Jul,Oct 10:00"`) or a day of the month
//! (`"15th 09:00"`, `"last of Mar,Jun,Sep,Dec 17:00"`), in the site time zone.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, Weekday};

use super::check::{Checker, parse_day_time, parse_weekday};
use super::maintenance::Window;

/// The day of the month a monthly window opens on; only days every month has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthDay {
    /// The `n`th day, 1 to 28.
    Day(i8),
    /// The month's last day.
    LastDay,
    /// The `n`th (1 to 4) such weekday of the month.
    Nth(i8, Weekday),
    /// The month's last such weekday.
    Last(Weekday),
}

impl MonthDay {
    /// Whether `date` is this day of its month.
    pub fn is(self, date: Date) -> bool {
        let last = date.days_in_month();
        match self {
            MonthDay::Day(n) => date.day() == n,
            MonthDay::LastDay => date.day() == last,
            MonthDay::Nth(n, w) => date.weekday() == w && (date.day() - 1) / 7 + 1 == n,
            MonthDay::Last(w) => date.weekday() == w && date.day() + 7 > last,
        }
    }
}

impl fmt::Display for MonthDay {
    /// "1st Monday", "last Friday", "15th", "last day".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonthDay::Day(n) => write!(f, "{}", ordinal(*n)),
            MonthDay::LastDay => f.write_str("last day"),
            MonthDay::Nth(n, w) => write!(f, "{} {w:?}", ordinal(*n)),
            MonthDay::Last(w) => write!(f, "last {w:?}"),
        }
    }
}

/// The months a monthly window opens in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Months(u16);

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Months {
    /// Every month of the year.
    pub const ALL: Months = Months(0b1_1111_1111_1110);

    /// The months numbered in `months` (1 = January); other numbers are ignored.
    pub fn of(months: impl IntoIterator<Item = i8>) -> Months {
        Months(
            months
                .into_iter()
                .filter(|m| (1..=12).contains(m))
                .fold(0, |bits, m| bits | 1 << m),
        )
    }

    /// Whether `month` (1 = January) is one of them.
    pub fn contains(self, month: i8) -> bool {
        (1..=12).contains(&month) && self.0 & (1 << month) != 0
    }
}

impl fmt::Display for Months {
    /// "every month", or the months' names: "Jan, Apr, Jul, Oct".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Months::ALL {
            return f.write_str("every month");
        }
        let names: Vec<&str> = (1..=12i8)
            .filter(|m| self.contains(*m))
            .filter_map(|m| MONTH_NAMES.get(usize::try_from(m - 1).ok()?).copied())
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// Checks `every` at key path `path`: the window it describes, open for `duration`.
pub(super) fn parse_every(c: &mut Checker, path: &str, text: &str, duration: Duration) -> Option<Window> {
    match parse(text, duration) {
        Ok(window) => Some(window),
        Err(problem) => {
            c.err(path, problem);
            None
        }
    }
}

const EXPECTED: &str = "expected \"Tue 09:00\" (weekly), \"09:00\" (daily), \"1st Mon of Jan,Apr,Jul,Oct 10:00\", \"15th 09:00\" or \"last of Mar,Jun,Sep,Dec 17:00\" (monthly), 24-hour time in the site time zone";

fn parse(text: &str, duration: Duration) -> Result<Window, String> {
    match parse_day_time(text) {
        Some((Some(weekday), time)) => {
            return Ok(Window::Weekly {
                weekday,
                time,
                duration,
            });
        }
        Some((None, time)) => return Ok(Window::Daily { time, duration }),
        None => {}
    }
    let unparsed = || format!("cannot parse {text:?}; {EXPECTED}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((time, words)) = words.split_last() else {
        return Err(unparsed());
    };
    let time = match parse_day_time(time) {
        Some((None, time)) => time,
        _ => return Err(unparsed()),
    };
    let Some((first, rest)) = words.split_first() else {
        return Err(unparsed());
    };
    let nth = match *first {
        "last" => None,
        word => Some(parse_ordinal(word).ok_or_else(unparsed)?),
    };
    let (weekday, rest) = match rest.split_first() {
        Some((word, rest)) if *word != "of" => (Some((parse_weekday(word).ok_or_else(unparsed)?, *word)), rest),
        _ => (None, rest),
    };
    let months = match rest.split_first() {
        None => Months::ALL,
        Some((&"of", names)) if !names.is_empty() => months(text, &names.concat())?,
        Some(_) => return Err(unparsed()),
    };
    let day = match (nth, weekday) {
        (None, None) => MonthDay::LastDay,
        (None, Some((w, _))) => MonthDay::Last(w),
        (Some(n), None) if n <= 28 => MonthDay::Day(n),
        (Some(n), None) => {
            return Err(format!(
                "{text:?}: the {} is refused, days 29 to 31 are not in every month; write \"last\" for a month's last day, e.g. \"last of Mar,Jun,Sep,Dec 17:00\"",
                ordinal(n)
            ));
        }
        (Some(n), Some((w, _))) if n <= 4 => MonthDay::Nth(n, w),
        (Some(n), Some((_, word))) => {
            return Err(format!(
                "{text:?}: not every month has a {} {word}; write \"last {word}\" for a month's last one, e.g. \"last {word} of Jan,Apr,Jul,Oct 10:00\"",
                ordinal(n)
            ));
        }
    };
    Ok(Window::Monthly {
        day,
        months,
        time,
        duration,
    })
}

/// `"Jan,Apr,Jul,Oct"` (the words after `of`, joined) into months.
fn months(text: &str, list: &str) -> Result<Months, String> {
    let mut numbers = Vec::new();
    for name in list.split(',') {
        let Some(i) = MONTH_NAMES.iter().position(|m| *m == name) else {
            return Err(format!(
                "{text:?}: unknown month {name:?}; expected a comma list of {}, e.g. \"1st Mon of Jan,Apr,Jul,Oct 10:00\"",
                MONTH_NAMES.join(" ")
            ));
        };
        numbers.extend(i8::try_from(i + 1).ok());
    }
    Ok(Months::of(numbers))
}

/// `"1st"` → 1, `"22nd"` → 22 (1 to 31, with its English suffix).
fn parse_ordinal(word: &str) -> Option<i8> {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: i8 = digits.parse().ok().filter(|n| (1..=31).contains(n))?;
    (ordinal(n) == word).then_some(n)
}

/// 1 → "1st", 2 → "2nd", 11 → "11th", 23 → "23rd".
fn ordinal(n: i8) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use jiff::civil::Time;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(h: i8, m: i8) -> Time {
        Time::constant(h, m, 0, 0)
    }

    fn monthly(day: MonthDay, months: Months, time: Time) -> Window {
        Window::Monthly {
            day,
            months,
            time,
            duration: HOUR,
        }
    }

    fn quarters(first: i8) -> Months {
        Months::of([first, first + 3, first + 6, first + 9])
    }

    #[test]
    fn monthly_occurrences_parse_into_their_day_and_months() {
        assert_eq!(
            parse("1st Mon of Jan,Apr,Jul,Oct 10:00", HOUR),
            Ok(monthly(MonthDay::Nth(1, Weekday::Monday), quarters(1), at(10, 0)))
        );
        assert_eq!(
            parse("last of Mar,Jun,Sep,Dec 17:00", HOUR),
            Ok(monthly(MonthDay::LastDay, quarters(3), at(17, 0)))
        );
        assert_eq!(
            parse("15th of Jan,Jul 09:00", HOUR),
            Ok(monthly(MonthDay::Day(15), Months::of([1, 7]), at(9, 0)))
        );
        assert_eq!(
            parse("1st 09:00", HOUR),
            Ok(monthly(MonthDay::Day(1), Months::ALL, at(9, 0)))
        );
        assert_eq!(
            parse("last Fri of Dec 16:30", HOUR),
            Ok(monthly(MonthDay::Last(Weekday::Friday), Months::of([12]), at(16, 30)))
        );
        assert_eq!(
            parse("22nd of Jan, Feb 08:00", HOUR),
            Ok(monthly(MonthDay::Day(22), Months::of([1, 2]), at(8, 0)))
        );
        assert_eq!(
            parse("Tue 09:00", HOUR),
            Ok(Window::Weekly {
                weekday: Weekday::Tuesday,
                time: at(9, 0),
                duration: HOUR
            })
        );
    }

    #[test]
    fn days_not_in_every_month_are_refused_with_the_way_to_say_last() {
        let problem = parse("31st of Jan,Mar 09:00", HOUR).expect_err("refused");
        assert!(
            problem.contains("the 31st is refused, days 29 to 31 are not in every month; write \"last\""),
            "{problem}"
        );
        assert!(parse("29th 09:00", HOUR).is_err());
        assert!(parse("28th 09:00", HOUR).is_ok());
        let problem = parse("5th Mon 09:00", HOUR).expect_err("refused");
        assert!(
            problem.contains("not every month has a 5th Mon; write \"last Mon\""),
            "{problem}"
        );
    }

    #[test]
    fn malformed_occurrences_are_refused() {
        for text in [
            "1th Mon 10:00",
            "1st Mon",
            "1st Mon of 10:00",
            "1st Mon in Jan 10:00",
            "first Mon 10:00",
            "1st Mon of Jan 24:00",
            "0th 10:00",
            "1st Mon Tue 10:00",
        ] {
            let problem = parse(text, HOUR).expect_err(text);
            assert!(problem.starts_with("cannot parse"), "{text}: {problem}");
        }
        let problem = parse("1st Mon of Jan,Foo 10:00", HOUR).expect_err("refused");
        assert!(problem.contains("unknown month \"Foo\""), "{problem}");
    }

    #[test]
    fn a_month_day_names_the_days_it_is() {
        let d = |s: &str| s.parse::<Date>().expect("date");
        assert!(MonthDay::Nth(1, Weekday::Monday).is(d("2026-01-05")));
        assert!(!MonthDay::Nth(1, Weekday::Monday).is(d("2026-01-12")));
        assert!(MonthDay::Nth(4, Weekday::Thursday).is(d("2026-11-26")));
        assert!(MonthDay::Last(Weekday::Sunday).is(d("2026-03-29")));
        assert!(!MonthDay::Last(Weekday::Sunday).is(d("2026-03-22")));
        assert!(MonthDay::LastDay.is(d("2028-02-29")));
        assert!(!MonthDay::LastDay.is(d("2028-02-28")));
        assert!(MonthDay::Day(15).is(d("2026-07-15")));
    }

    #[test]
    fn monthly_windows_describe_themselves_as_people_write_them() {
        assert_eq!(MonthDay::Nth(1, Weekday::Monday).to_string(), "1st Monday");
        assert_eq!(MonthDay::Day(22).to_string(), "22nd");
        assert_eq!(MonthDay::Day(12).to_string(), "12th");
        assert_eq!(MonthDay::LastDay.to_string(), "last day");
        assert_eq!(quarters(1).to_string(), "Jan, Apr, Jul, Oct");
        assert_eq!(Months::ALL.to_string(), "every month");
    }
}
