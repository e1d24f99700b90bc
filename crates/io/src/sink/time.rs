//! Calendar dates from Unix time (UTC), for rotated file names and ClickHouse rows, without a
//! date crate: days to year/month/day by the proleptic Gregorian calendar.

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01.
pub fn civil(days: i64) -> (i64, u32, u32) {
    // Shift to a calendar starting on 0000-03-01, so the leap day is the last day of a year
    // and each 400-year era has the same 146097 days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-01-02` of Unix seconds.
pub fn date(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2024-01-02 03:04:05` of Unix seconds (ClickHouse's DateTime text, UTC).
pub fn date_time(secs: u64) -> String {
    let s = secs % 86_400;
    format!(
        "{} {:02}:{:02}:{:02}",
        date(secs),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `20240102T030405Z` of Unix seconds: sorts in time order, safe in file names.
pub fn compact(secs: u64) -> String {
    let (y, m, d) = civil((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(compact(1_704_164_645), "20240102T030405Z");
        assert_eq!(civil(-1), (1969, 12, 31));
    }
}
