//! The replay CSV reader (`replay::read_csv`) with the default and a
//! millisecond column layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailpulse::replay::{read_csv, CsvOptions, ValueUnit};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = read_csv(text, &CsvOptions::default()).map_err(|e| e.to_string());
        let ms = CsvOptions {
            time_column: "time".into(),
            value_column: "latency_ms".into(),
            unit: ValueUnit::Milliseconds,
        };
        let _ = read_csv(text, &ms);
    }
});
