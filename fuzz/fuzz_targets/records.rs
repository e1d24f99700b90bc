//! The readers of records on whatever they are given: each input is read as lines of JSON,
//! merged per record window and into one (as `tcpulse merge` and `report` do), and every merged
//! window is reported and plotted. Numbers at the edge of u64, histograms that do not decode,
//! records of other versions or shapes: counted or passed over, never a panic, and a merged
//! record is a record that reads back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpulse::view::merge::{Merger, Window};
use tcpulse::view::{plot, report};
use tcpulse_core::schema::Record;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut own = Merger::new(Window::Own, 5);
    let mut all = Merger::new(Window::All, 5);
    for line in text.lines() {
        own.push_line(line);
        all.push_line(line);
    }
    let windows = own.finish();
    let total = all.finish();
    let th = report::Thresholds::default();
    for w in windows.iter().chain(&total) {
        let _ = report::render(w, &th, report::Style::default());
        let line = serde_json::to_string(&w.record).expect("a merged record serialises");
        assert!(
            matches!(Record::from_line(&line), Ok(Record::Interval(_))),
            "a merged record reads back: {line}"
        );
    }
    if let Some(t) = total.first() {
        let _ = plot::charts(t, &windows, 4);
    }
});
