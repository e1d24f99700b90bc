//! Values as operators write them: durations (`250ms`, `1s`, `2m`) and lists of numbers
//! (`0-3,5`). The command line, the configuration and scenario files and sink options all read
//! them through here, so they read alike everywhere.

use std::time::Duration;

/// Parses `250ms`, `1s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 1s, 500ms)"))?;
    let secs = match unit {
        "ns" => value / 1e9,
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use ns, us, ms, s, m, h)"
            ))
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Writes a duration the way [`parse_duration`] reads it, exactly: `300s`, `500ms`, `1500us`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let (value, unit) = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")]
        .into_iter()
        .find(|&(per, _)| ns % per == 0)
        .map_or((ns, "ns"), |(per, unit)| (ns / per, unit));
    format!("{value}{unit}")
}

/// A list of numbers given as `0-3`, `0,2,5` or a mix (`0-1,4`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberList(pub Vec<u32>);

/// Parses a [`NumberList`].
pub fn parse_list(text: &str) -> Result<NumberList, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a number or a range like 0-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a > 4096 {
                    return Err(format!("`{part}` is not an increasing range"));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err("empty list".into());
    }
    Ok(NumberList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_format_back_to_themselves() {
        for text in ["1s", "300s", "500ms", "1500us", "7ns"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::from_secs(120)), "120s");
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-3"), Ok(NumberList(vec![0, 1, 2, 3])));
        assert_eq!(parse_list("0-1,4"), Ok(NumberList(vec![0, 1, 4])));
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("").is_err());
    }
}
