//! The replay library behind `mailpulse replay` (`cmd/replay.rs`): a
//! strict CSV reader that names the line of every bad row, a Prometheus
//! range-query client, [`replay_series`], which runs the slowdown detector
//! ([`crate::detect`]) over a series faster than real time, and
//! [`IncidentLine`], the JSON form of an incident (`replay` and `incidents`).
//! It must not judge samples itself: every decision comes from the same
//! [`Detector`] the agent runs, fed in file (or series) order.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::detect::{DetectEvent, Detector, Incident, Observation, SlowdownSettings};
use crate::human::{self, Style};

/// How long a Prometheus range query may take, connection included.
pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest Prometheus answer read (a week of 1 s points is ~30 MB).
pub const PROMETHEUS_MAX_BODY: usize = 256 * 1024 * 1024;
/// The largest Prometheus error answer read (its message is quoted).
pub const PROMETHEUS_MAX_ERROR_BODY: usize = 64 * 1024;

/// The unit of the values in a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ValueUnit {
    /// Seconds.
    #[default]
    #[value(name = "s")]
    Seconds,
    /// Milliseconds.
    #[value(name = "ms")]
    Milliseconds,
}

impl ValueUnit {
    /// Nanoseconds per unit.
    fn nanos(self) -> f64 {
        match self {
            ValueUnit::Seconds => 1e9,
            ValueUnit::Milliseconds => 1e6,
        }
    }

    /// The name used in messages.
    fn name(self) -> &'static str {
        match self {
            ValueUnit::Seconds => "seconds",
            ValueUnit::Milliseconds => "milliseconds",
        }
    }
}

/// How to read a CSV series.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// The timestamp column, matched regardless of case.
    pub time_column: String,
    /// The value column, matched regardless of case.
    pub value_column: String,
    /// The unit of the values.
    pub unit: ValueUnit,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            time_column: "timestamp".into(),
            value_column: "value".into(),
            unit: ValueUnit::Seconds,
        }
    }
}

/// One data row of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The 1-based line it was read from (0 for series not read from a file).
    pub line: usize,
    /// Its timestamp.
    pub at: DateTime<Utc>,
    /// Its latency; `None` for a failed probe.
    pub latency: Option<Duration>,
}

impl Row {
    /// The detector's view of the row.
    pub fn observation(&self) -> Observation {
        Observation {
            at: self.at,
            wall: None,
            latency: self.latency,
            worst_phase: None,
        }
    }
}

/// A problem with one line of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

/// Reads a CSV series: a header line, then one row per line. Blank lines are
/// skipped; any other line that cannot be read is an error naming it.
pub fn read_csv(text: &str, options: &CsvOptions) -> Result<Vec<Row>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let (header_line, header) = lines.next().ok_or(CsvError {
        line: 1,
        message: "no header line".into(),
    })?;
    let err = |line, message: String| CsvError { line, message };
    let header = split_fields(header).map_err(|m| err(header_line, m))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                err(
                    header_line,
                    format!(
                        "no column {} in the header (columns: {})",
                        quote(name),
                        column_list(&header)
                    ),
                )
            })
    };
    let time_col = column(&options.time_column)?;
    let value_col = column(&options.value_column)?;
    let needed = time_col.max(value_col) + 1;
    let mut rows = Vec::new();
    for (line, text) in lines {
        let fields = split_fields(text).map_err(|m| err(line, m))?;
        if fields.len() < needed {
            return Err(err(
                line,
                format!("expected at least {needed} fields, found {}", fields.len()),
            ));
        }
        let at = parse_timestamp(fields[time_col].trim()).map_err(|m| err(line, m))?;
        let latency =
            parse_value(fields[value_col].trim(), options.unit).map_err(|m| err(line, m))?;
        rows.push(Row { line, at, latency });
    }
    Ok(rows)
}

/// Checks that rows never go back in time; the error names the first row
/// that does and the row before it.
pub fn check_order(rows: &[Row]) -> Result<(), CsvError> {
    let backwards = rows.windows(2).filter(|w| w[1].at < w[0].at).count();
    let Some(first) = rows.windows(2).find(|w| w[1].at < w[0].at) else {
        return Ok(());
    };
    let more = match backwards {
        1 => String::new(),
        n => format!(" ({n} rows go back in time in all)"),
    };
    Err(CsvError {
        line: first[1].line,
        message: format!(
            "timestamp {} is earlier than {} on line {}{more}; the detector needs rows in time order: sort the file, or pass --sort",
            rfc3339(first[1].at),
            rfc3339(first[0].at),
            first[0].line
        ),
    })
}

/// Splits one CSV line into fields: commas separate, double quotes enclose
/// fields that contain commas, and `""` inside them is a quote.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => return Err("unexpected quote inside a field".into()),
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err("unexpected text after a quoted field".into())
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

/// The most characters of one field an error message quotes: a row's field
/// can be megabytes long, and an error should still fit on a screen.
const MAX_QUOTED_CHARS: usize = 64;
/// The most header columns an error message lists.
const MAX_LISTED_COLUMNS: usize = 20;

/// `text` quoted for an error message: whole when short, else its first
/// [`MAX_QUOTED_CHARS`] characters, an ellipsis and its length in bytes.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// `text` as it is when short, else quoted and cut as by [`quote`].
fn clip(text: &str) -> String {
    if text.chars().nth(MAX_QUOTED_CHARS).is_some() {
        quote(text)
    } else {
        text.to_string()
    }
}

/// Header columns for an error message: at most [`MAX_LISTED_COLUMNS`],
/// each cut as by [`clip`].
fn column_list(header: &[String]) -> String {
    let mut list: Vec<String> = header
        .iter()
        .take(MAX_LISTED_COLUMNS)
        .map(|h| clip(h))
        .collect();
    if header.len() > MAX_LISTED_COLUMNS {
        list.push(format!("and {} more", header.len() - MAX_LISTED_COLUMNS));
    }
    list.join(", ")
}

/// Parses a timestamp: Unix seconds (with an optional fraction), RFC 3339,
/// or `YYYY-MM-DD HH:MM:SS` (optionally with a fraction) taken as UTC.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let invalid = || {
        format!(
            "invalid timestamp {} (expected Unix seconds, RFC 3339 or YYYY-MM-DD HH:MM:SS)",
            quote(text)
        )
    };
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
        if secs.is_empty() || text.ends_with('.') || fraction.contains('.') || fraction.len() > 9 {
            return Err(invalid());
        }
        let secs: i64 = secs.parse().map_err(|_| invalid())?;
        let nanos: u32 = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<9}").parse().map_err(|_| invalid())?
        };
        return DateTime::from_timestamp(secs, nanos).ok_or_else(invalid);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| invalid())
}

/// Parses a value in `unit`; empty is a failed probe.
fn parse_value(text: &str, unit: ValueUnit) -> Result<Option<Duration>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        format!(
            "invalid value {} (expected a latency in {}, or nothing for a failed probe)",
            quote(text),
            unit.name()
        )
    };
    let v: f64 = text.parse().map_err(|_| invalid())?;
    if !v.is_finite() {
        return Err(invalid());
    }
    if v < 0.0 {
        return Err(format!("negative latency {}", quote(text)));
    }
    latency_from(v, unit).ok_or_else(invalid).map(Some)
}

/// A latency from a non-negative number in `unit`, to the nanosecond.
fn latency_from(value: f64, unit: ValueUnit) -> Option<Duration> {
    let nanos = (value * unit.nanos()).round();
    (nanos < 1e18).then(|| Duration::from_nanos(nanos as u64))
}

/// Runs a fresh detector over observations in order; returns every incident
/// it raised, closed ones first in order and the one still open at the end
/// last.
pub fn replay_series(
    settings: &SlowdownSettings,
    observations: impl IntoIterator<Item = Observation>,
) -> Vec<Incident> {
    let mut detector = Detector::new(settings.clone());
    let mut incidents = Vec::new();
    for obs in observations {
        if let Some(DetectEvent::Closed(incident)) = detector.observe(&obs) {
            incidents.push(incident);
        }
    }
    incidents.extend(detector.open_incident().cloned());
    incidents
}

/// One incident as `replay --json` prints it: exactly these fields, times
/// in RFC 3339 UTC, seconds rounded to the microsecond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    /// The target (or series) name.
    pub target: String,
    /// `slow` or `down`.
    pub kind: String,
    /// The onset: the first bad sample of the burst that opened it, or where
    /// latency left the normal band just before it.
    pub started_at: String,
    /// The sample that confirmed it.
    pub detected_at: String,
    /// The first healthy sample of the run that closed it; null while open.
    pub recovered_at: Option<String>,
    /// `recovered_at - started_at`; null while open.
    pub duration_seconds: Option<f64>,
    /// `detected_at - started_at`.
    pub time_to_detect_seconds: f64,
    /// The highest latency seen; null if every probe failed.
    pub peak_seconds: Option<f64>,
    /// The baseline at onset; null if it was not warm yet.
    pub baseline_seconds: Option<f64>,
}

impl IncidentLine {
    /// The printed form of an incident of `target`.
    pub fn new(target: &str, incident: &Incident) -> IncidentLine {
        IncidentLine {
            target: target.to_string(),
            kind: incident.kind.as_str().to_string(),
            started_at: rfc3339(incident.started_at),
            detected_at: rfc3339(incident.detected_at),
            recovered_at: incident.recovered_at.map(rfc3339),
            duration_seconds: incident.duration_seconds().map(micro),
            time_to_detect_seconds: micro(incident.time_to_detect_seconds()),
            peak_seconds: incident.peak_latency.map(|d| micro(d.as_secs_f64())),
            baseline_seconds: incident.baseline_at_onset.map(|d| micro(d.as_secs_f64())),
        }
    }
}

/// RFC 3339 in UTC with `Z`, with a fraction only when there is one.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Seconds rounded to the microsecond.
fn micro(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// A Prometheus range query.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// PromQL.
    pub query: String,
    /// Start, as Prometheus accepts it.
    pub start: String,
    /// End, as Prometheus accepts it.
    pub end: String,
    /// Step, as Prometheus accepts it.
    pub step: String,
}

/// Prometheus' answer to `/api/v1/query_range`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromResponse {
    status: String,
    data: Option<PromData>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromData {
    result_type: String,
    result: Vec<PromSeries>,
}

#[derive(Debug, Deserialize)]
struct PromSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Runs a range query against the Prometheus at `base` (http or https) and
/// returns each series' name and observations, in the order returned.
pub async fn query_range(
    base: &str,
    query: &RangeQuery,
    unit: ValueUnit,
) -> anyhow::Result<Vec<(String, Vec<Observation>)>> {
    let mut url = url::Url::parse(base).with_context(|| format!("invalid URL {base:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("only http:// and https:// Prometheus URLs are supported, got {base:?}");
    }
    url.path_segments_mut()
        .map_err(|()| anyhow!("invalid URL {base:?}"))?
        .pop_if_empty()
        .extend(["api", "v1", "query_range"]);
    url.query_pairs_mut()
        .append_pair("query", &query.query)
        .append_pair("start", &query.start)
        .append_pair("end", &query.end)
        .append_pair("step", &query.step);
    let body = tokio::time::timeout(PROMETHEUS_TIMEOUT, http_get(&url))
        .await
        .map_err(|_| {
            anyhow!(
                "prometheus did not answer within {}",
                human::duration(PROMETHEUS_TIMEOUT, Style::Config)
            )
        })??;
    parse_matrix(&body, unit)
}

/// GETs `url` with the agent's one outbound HTTP client (system roots,
/// the proxies of the environment, no redirect followed); returns the body
/// of a 2xx answer or the body of an error answer as an error.
pub async fn http_get(url: &url::Url) -> anyhow::Result<Vec<u8>> {
    let client = crate::outbound::Client::new(&crate::config::TlsOptions::default(), None)
        .map_err(|e| anyhow!("{e}"))?;
    let limits = crate::outbound::BodyLimits {
        success: PROMETHEUS_MAX_BODY,
        error: PROMETHEUS_MAX_ERROR_BODY,
    };
    let headers = [("accept", "application/json".to_string())];
    let answer = client
        .send(hyper::Method::GET, url, &headers, Vec::new(), limits)
        .await
        .map_err(|e| anyhow!("prometheus request failed: {e}"))?;
    if let Some(e) = &answer.read_error {
        bail!("cannot read the prometheus answer: {e}");
    }
    let status = hyper::StatusCode::from_u16(answer.status)
        .map_err(|_| anyhow!("prometheus answered status {}", answer.status))?;
    let body = answer.body;
    if !status.is_success() {
        let detail = serde_json::from_slice::<PromResponse>(&body)
            .ok()
            .and_then(|r| r.error)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect()
            });
        bail!("prometheus answered {status}: {detail}");
    }
    if answer.cut {
        bail!(
            "cannot read the prometheus answer: longer than {} bytes",
            PROMETHEUS_MAX_BODY
        );
    }
    Ok(body)
}

/// Parses a range-query answer into named series of observations; `NaN`
/// and infinite values are failed probes.
fn parse_matrix(body: &[u8], unit: ValueUnit) -> anyhow::Result<Vec<(String, Vec<Observation>)>> {
    let response: PromResponse =
        serde_json::from_slice(body).context("invalid prometheus answer")?;
    if response.status != "success" {
        bail!(
            "prometheus query failed: {}",
            response.error.unwrap_or(response.status)
        );
    }
    let data = response
        .data
        .ok_or_else(|| anyhow!("prometheus answer has no data"))?;
    if data.result_type != "matrix" {
        bail!(
            "prometheus answered a {}, expected a matrix",
            data.result_type
        );
    }
    let mut series = Vec::new();
    for (k, s) in data.result.into_iter().enumerate() {
        let name = series_name(&s.metric, k);
        let mut observations = Vec::with_capacity(s.values.len());
        for (t, v) in s.values {
            let at = DateTime::from_timestamp_millis((t * 1000.0).round() as i64)
                .ok_or_else(|| anyhow!("series {}: invalid timestamp {t}", clip(&name)))?;
            let value: f64 = v.parse().map_err(|_| {
                anyhow!(
                    "series {}: invalid value {} at {}",
                    clip(&name),
                    quote(&v),
                    rfc3339(at)
                )
            })?;
            if let Some(last) = observations.last().map(|o: &Observation| o.at) {
                if at < last {
                    bail!(
                        "series {}: timestamp {} is earlier than the one before it, {}",
                        clip(&name),
                        rfc3339(at),
                        rfc3339(last)
                    );
                }
            }
            let latency = if value.is_finite() {
                if value < 0.0 {
                    bail!(
                        "series {}: negative latency {} at {}",
                        clip(&name),
                        quote(&v),
                        rfc3339(at)
                    );
                }
                latency_from(value, unit)
            } else {
                None
            };
            observations.push(Observation {
                at,
                wall: None,
                latency,
                worst_phase: None,
            });
        }
        series.push((name, observations));
    }
    Ok(series)
}

/// A series' name: its `target` label, else `instance`, else all its labels,
/// else its position.
fn series_name(labels: &BTreeMap<String, String>, index: usize) -> String {
    for key in ["target", "instance"] {
        if let Some(v) = labels.get(key) {
            return v.clone();
        }
    }
    if labels.is_empty() {
        return format!("series-{}", index + 1);
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn timestamp_forms() {
        let check = |text: &str, expect: Option<&str>| {
            assert_eq!(parse_timestamp(text).ok(), expect.map(at), "{text}");
        };
        check("1709251200", Some("2024-03-01T00:00:00Z"));
        check("1709251200.25", Some("2024-03-01T00:00:00.25Z"));
        check("2024-03-01T00:00:00Z", Some("2024-03-01T00:00:00Z"));
        check("2024-03-01T01:00:00+01:00", Some("2024-03-01T00:00:00Z"));
        check("2024-03-01 00:00:00", Some("2024-03-01T00:00:00Z"));
        check("2024-03-01 00:00:00.5", Some("2024-03-01T00:00:00.5Z"));
        check("2024-03-01", None);
        check("1709251200.", None);
        check(".5", None);
        check("-5", None);
        check("yesterday", None);
        check("", None);
    }

    #[test]
    fn fields_and_quotes() {
        let check = |line: &str, expect: Result<Vec<&str>, &str>| {
            let expect = expect
                .map(|v| v.into_iter().map(String::from).collect())
                .map_err(String::from);
            assert_eq!(split_fields(line), expect, "{line}");
        };
        check("a,b,,c", Ok(vec!["a", "b", "", "c"]));
        check(
            "\"2018-06-17T00:00:00Z\",83.3,0",
            Ok(vec!["2018-06-17T00:00:00Z", "83.3", "0"]),
        );
        check("\"a,b\",\"say \"\"hi\"\"\"", Ok(vec!["a,b", "say \"hi\""]));
        check("\"open", Err("unterminated quoted field"));
        check("ab\"c", Err("unexpected quote inside a field"));
        check("\"a\"b", Err("unexpected text after a quoted field"));
    }

    /// Issue 21: shuffled rows were replayed as they came (0 incidents,
    /// exit 0); rows that go back in time are now named.
    #[test]
    fn rows_that_go_back_in_time_are_named() {
        let text = "timestamp,value\n100,0.2\n110,0.2\n110,0.3\n105,0.2\n120,0.2\n90,0.2\n";
        let mut rows = read_csv(text, &CsvOptions::default()).unwrap();
        let err = check_order(&rows).unwrap_err();
        assert_eq!(err.line, 5);
        assert_eq!(
            err.to_string(),
            "line 5: timestamp 1970-01-01T00:01:45Z is earlier than 1970-01-01T00:01:50Z on line 4 (2 rows go back in time in all); the detector needs rows in time order: sort the file, or pass --sort"
        );
        rows.sort_by_key(|r| r.at);
        assert_eq!(check_order(&rows), Ok(()));
        let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [7, 2, 5, 3, 4, 6], "equal times keep the file order");
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"target":"owa"},"values":[[20,"0.2"],[10,"0.2"]]}]}}"#;
        assert_eq!(
            parse_matrix(matrix, ValueUnit::Seconds).unwrap_err().to_string(),
            "series owa: timestamp 1970-01-01T00:00:10Z is earlier than the one before it, 1970-01-01T00:00:20Z"
        );
    }

    #[test]
    fn reads_columns_by_name_and_reports_lines() {
        let text = "TimeStamp,Value,Label\r\n\"2018-06-17T00:00:00Z\",83.5,0\r\n\r\n2018-06-17 01:00:00,,1\r\n";
        let options = CsvOptions {
            unit: ValueUnit::Milliseconds,
            ..CsvOptions::default()
        };
        let rows = read_csv(text, &options).unwrap();
        assert_eq!(
            rows,
            vec![
                Row {
                    line: 2,
                    at: Utc.with_ymd_and_hms(2018, 6, 17, 0, 0, 0).unwrap(),
                    latency: Some(Duration::from_micros(83_500)),
                },
                Row {
                    line: 4,
                    at: Utc.with_ymd_and_hms(2018, 6, 17, 1, 0, 0).unwrap(),
                    latency: None,
                },
            ]
        );
        let bad = "timestamp,value\n1,0.1\n2,slow\n";
        let err = read_csv(bad, &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: invalid value \"slow\" (expected a latency in seconds, or nothing for a failed probe)"
        );
        let err = read_csv("time,latency\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: no column \"timestamp\" in the header (columns: time, latency)"
        );
        let err = read_csv("timestamp,value\n1\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: expected at least 2 fields, found 1"
        );
        let err = read_csv("timestamp,value\n1,-2\n", &CsvOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "line 2: negative latency \"-2\"");
        let err = read_csv("", &CsvOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "line 1: no header line");
    }

    #[test]
    fn parses_a_prometheus_matrix() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"a:9115","target":"web"},"values":[[1709251200,"0.2"],[1709251215.5,"NaN"]]},
            {"metric":{"job":"x"},"values":[[1709251200,"0.3"]]},
            {"metric":{},"values":[]}]}}"#;
        let series = parse_matrix(body, ValueUnit::Seconds).unwrap();
        let names: Vec<_> = series.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["web", "{job=\"x\"}", "series-3"]);
        assert_eq!(series[0].1[0].latency, Some(Duration::from_millis(200)));
        assert_eq!(series[0].1[1].latency, None);
        assert_eq!(series[0].1[1].at, at("2024-03-01T00:00:15.5Z"));
        let err = parse_matrix(
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            ValueUnit::Seconds,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "prometheus query failed: parse error");
    }
}
