//! Logging to stderr, one event per line, in one of two formats: `text`
//! (a level and structured `key=value` fields, no colours) or `json` (one
//! object per line for log shippers: timestamp, level, target, message and
//! fields). When stderr is the journal's stream (`JOURNAL_STREAM` names
//! its device and inode), every line starts with an sd-daemon priority
//! prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug and trace),
//! which journald takes as the entry's priority and strips, so
//! `journalctl -p warning` shows the agent's warnings; text lines then
//! carry no timestamp (journald stamps entries itself).
//!
//! Prefixes rather than journald's native socket: they ride the stream
//! systemd already gives the unit, so they need no extra socket (nothing
//! to open, to lose, or to allow through the unit's sandbox), keep the
//! journal's order with anything else written to stderr, and still work,
//! harmlessly visible, when the stream is redirected.
//!
//! Fields are written with their `Display` or `Debug` forms in both
//! formats, so what keeps secrets out of text logs (`Secret` never shows
//! its value, receiver errors are redacted before they are logged) keeps
//! them out of JSON too.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`[agent] log_format`, `run --log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// A level, the message and `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format named `name` (`text` or `json`), if any.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    /// The format's name, as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Installs the global subscriber, writing to stderr. `RUST_LOG`, when
/// set, wins over `level`. Returns whether stderr is the journal's stream
/// (lines carry priority prefixes).
pub fn init(level: &str, format: LogFormat) -> bool {
    let journal = stderr_is_journal();
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber(
        filter,
        format,
        journal,
        std::io::stderr,
    ));
    journal
}

/// The subscriber [`init`] installs, writing to `writer`: `format`, and
/// priority prefixes when `journal` is true.
pub fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    journal: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let text = format::format().with_ansi(false).with_target(false);
    match (format, journal) {
        (LogFormat::Json, _) => Box::new(
            builder
                .event_format(Prefixed {
                    inner: Json,
                    journal,
                })
                .finish(),
        ),
        (LogFormat::Text, true) => Box::new(
            builder
                .event_format(Prefixed {
                    inner: text.without_time(),
                    journal,
                })
                .finish(),
        ),
        (LogFormat::Text, false) => Box::new(
            builder
                .event_format(Prefixed {
                    inner: text,
                    journal,
                })
                .finish(),
        ),
    }
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM`
/// to its `device:inode` for a unit whose stderr goes to the journal. The
/// variable alone is not enough: a process started from such a unit, with
/// its stderr elsewhere, inherits it too.
pub fn stderr_is_journal() -> bool {
    journal_stream_matches(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        stderr_identity(),
    )
}

/// The device and inode of stderr, if it is open.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether `JOURNAL_STREAM`'s value (`device:inode`, in decimal) names
/// `stderr`'s device and inode.
fn journal_stream_matches(var: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(var), Some((dev, ino))) = (var, stderr) else {
        return false;
    };
    var.split_once(':').is_some_and(|(d, i)| {
        d.trim().parse::<u64>() == Ok(dev) && i.trim().parse::<u64>() == Ok(ino)
    })
}

/// `text` as it should go to stderr outside the subscriber (before logging
/// is set up, or `main`'s last error): when stderr is the journal's
/// stream, every line starts with `level`'s priority prefix.
pub fn stderr_text(level: &Level, text: &str) -> String {
    prefixed(stderr_is_journal().then(|| priority(level)), text)
}

/// `text` with `<priority>` before every line, when there is a priority.
fn prefixed(priority: Option<u8>, text: &str) -> String {
    let Some(priority) = priority else {
        return text.to_owned();
    };
    text.split_inclusive('\n')
        .map(|line| format!("<{priority}>{line}"))
        .collect()
}

/// The sd-daemon priority of a level (`<N>`, syslog's numbers): error 3,
/// warning 4, info 6, debug and trace 7.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event format that, for the journal, starts every line of what
/// `inner` writes with the event's priority prefix (a message or field
/// with a line break still lands at its priority, line by line).
struct Prefixed<F> {
    /// The format of the line itself.
    inner: F,
    /// Whether to prefix.
    journal: bool,
}

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.journal {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let priority = priority(event.metadata().level());
        writer.write_str(&prefixed(Some(priority), &line))
    }
}

/// The JSON line format: `{"timestamp", "level", "target", "message",
/// "fields"}`, the timestamp in RFC 3339 UTC with microseconds, the level
/// upper case as tracing names it, and the event's other fields as an
/// object (numbers and booleans as such, everything else as text).
struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let text = |s: &str| serde_json::Value::from(s).to_string();
        writeln!(
            writer,
            "{{\"timestamp\":{},\"level\":{},\"target\":{},\"message\":{},\"fields\":{}}}",
            text(&timestamp),
            text(meta.level().as_str()),
            text(meta.target()),
            text(fields.message.as_deref().unwrap_or("")),
            serde_json::Value::Object(fields.fields),
        )
    }
}

/// An event's fields as JSON values, the message apart.
#[derive(Default)]
struct JsonFields {
    /// The `message` field.
    message: Option<String>,
    /// Every other field.
    fields: serde_json::Map<String, serde_json::Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities are not JSON numbers: write them as text.
        let value = serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| value.to_string().into());
        self.put(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(e) = source {
            let _ = write!(text, ": {e}");
            source = e.source();
        }
        self.put(field, text.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;

        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    /// What `log` writes through a subscriber of `format`, at level debug.
    fn logged(format: LogFormat, journal: bool, log: impl FnOnce()) -> String {
        let out = Capture::default();
        let sub = subscriber(EnvFilter::new("debug"), format, journal, out.clone());
        tracing::subscriber::with_default(sub, log);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn every_level() {
        tracing::error!("e");
        tracing::warn!("w");
        tracing::info!("i");
        tracing::debug!("d");
        tracing::trace!("t (filtered out)");
    }

    #[test]
    fn journal_lines_carry_their_level_as_a_priority_prefix() {
        let text = logged(LogFormat::Text, true, every_level);
        let firsts: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(firsts, ["<3>", "<4>", "<6>", "<7>"], "{text}");
        // No timestamp: journald stamps entries itself.
        assert!(
            text.lines().next().unwrap().starts_with("<3>ERROR e"),
            "{text}"
        );
    }

    #[test]
    fn without_the_journal_there_is_no_prefix_and_a_timestamp() {
        let text = logged(LogFormat::Text, false, every_level);
        assert_eq!(text.lines().count(), 4, "{text}");
        for line in text.lines() {
            assert!(!line.starts_with('<'), "{line}");
            // 2026-01-01T00:00:00.000000Z
            assert!(line.as_bytes()[4] == b'-' && line.contains('T'), "{line}");
        }
    }

    #[test]
    fn every_line_of_a_multi_line_event_gets_the_prefix() {
        let text = logged(
            LogFormat::Text,
            true,
            || tracing::error!(error = %"a.toml:1:1: x: bad\na.toml:2:1: y: bad", "rejected"),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines.iter().all(|l| l.starts_with("<3>")), "{text}");
    }

    #[test]
    fn json_lines_have_timestamp_level_target_message_and_fields() {
        let text = logged(LogFormat::Json, false, || {
            tracing::warn!(
                problem = %"a file\nwith \"quotes\"",
                count = 3u64,
                delta = -2i64,
                ratio = 0.5,
                nan = f64::NAN,
                ok = true,
                "configuration warning"
            )
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "mailpulse::service::logging::tests");
        assert_eq!(v["message"], "configuration warning");
        assert_eq!(v["fields"]["problem"], "a file\nwith \"quotes\"");
        assert_eq!(v["fields"]["count"], 3);
        assert_eq!(v["fields"]["delta"], -2);
        assert_eq!(v["fields"]["ratio"], 0.5);
        assert_eq!(v["fields"]["nan"], "NaN");
        assert_eq!(v["fields"]["ok"], true);
        let ts = v["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
    }

    #[test]
    fn json_for_the_journal_is_prefixed_and_still_one_object_a_line() {
        let text = logged(LogFormat::Json, true, || {
            tracing::error!(error = "one\ntwo", "rejected");
            tracing::info!("fine");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for (line, prefix, level) in [(lines[0], "<3>", "ERROR"), (lines[1], "<6>", "INFO")] {
            let json = line
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{line}"));
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(v["level"], level);
        }
    }

    #[test]
    fn json_errors_carry_their_chain() {
        let outer = Wrapped(std::io::Error::other("disk on fire"));
        let text = logged(LogFormat::Json, false, || {
            tracing::error!(
                error = &outer as &(dyn std::error::Error + 'static),
                "store"
            )
        });
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["fields"]["error"], "wrapped: disk on fire", "{text}");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn plain_text_is_prefixed_line_by_line_only_for_the_journal() {
        let text = "mailpulse: error: a.toml:1:1: x: bad\na.toml:2:1: y: bad\n";
        assert_eq!(
            prefixed(Some(3), text),
            "<3>mailpulse: error: a.toml:1:1: x: bad\n<3>a.toml:2:1: y: bad\n"
        );
        assert_eq!(prefixed(None, text), text);
    }

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        assert!(journal_stream_matches(
            Some("64769:1234"),
            Some((64769, 1234))
        ));
        // Inherited from a unit, but stderr is elsewhere now.
        assert!(!journal_stream_matches(
            Some("64769:1234"),
            Some((64769, 99))
        ));
        assert!(!journal_stream_matches(Some("1:1234"), Some((64769, 1234))));
        assert!(!journal_stream_matches(None, Some((64769, 1234))));
        assert!(!journal_stream_matches(Some("64769:1234"), None));
        assert!(!journal_stream_matches(
            Some("garbage"),
            Some((64769, 1234))
        ));
        assert!(!journal_stream_matches(Some(""), Some((0, 0))));
    }

    #[test]
    fn formats_have_names() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(LogFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(LogFormat::from_name("JSON"), None);
    }
}
