//! `mailpulse replay` through the real binary: CSV files in every timestamp
//! format, repeated timestamps, failed probes, bad rows, settings from a
//! configuration file, the table output, and a fake Prometheus.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use support::{write_file, HttpServer, Reply};

/// 2024-03-01T00:00:00Z
const T0: i64 = 1_709_251_200;

/// A 10 s series: 40 healthy samples of 200 ms, a 4x slowdown of 12 samples
/// (with a repeated timestamp carrying the peak), 23 healthy samples, then
/// 8 failed probes until the end of the file.
fn series() -> Vec<(i64, Option<f64>)> {
    let mut rows = Vec::new();
    for k in 0..40 {
        rows.push((T0 + 10 * k, Some(0.2)));
    }
    for k in 40..52 {
        rows.push((T0 + 10 * k, Some(0.8)));
        if k == 45 {
            rows.push((T0 + 10 * k, Some(1.5)));
        }
    }
    for k in 52..75 {
        rows.push((T0 + 10 * k, Some(0.2)));
    }
    for k in 75..83 {
        rows.push((T0 + 10 * k, None));
    }
    rows
}

/// What `--json` prints for [`series`] under the target name `web`.
const EXPECTED: &str = concat!(
    r#"{"target":"web","kind":"slow","started_at":"2024-03-01T00:06:40Z","detected_at":"2024-03-01T00:07:40Z","recovered_at":"2024-03-01T00:08:40Z","duration_seconds":120.0,"time_to_detect_seconds":60.0,"peak_seconds":1.5,"baseline_seconds":0.2}"#,
    "\n",
    r#"{"target":"web","kind":"down","started_at":"2024-03-01T00:12:30Z","detected_at":"2024-03-01T00:13:30Z","recovered_at":null,"duration_seconds":null,"time_to_detect_seconds":60.0,"peak_seconds":null,"baseline_seconds":0.2}"#,
    "\n",
);

/// Formats [`series`] as CSV with a header and per-row formatters.
fn csv(
    header: &str,
    time: impl Fn(i64) -> String,
    value: impl Fn(Option<f64>) -> String,
) -> String {
    let mut text = format!("{header}\n");
    for (t, v) in series() {
        text.push_str(&format!("{},{},x\n", time(t), value(v)));
    }
    text
}

fn seconds(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

fn replay(args: &[&str]) -> Output {
    Command::new(support::bin())
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `replay --json` and returns stdout, failing with stderr otherwise.
fn replay_json(args: &[&str]) -> String {
    let out = replay(&[&["--json"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn unix_seconds_repeated_timestamps_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "web.csv",
        &csv("timestamp,value,label", |t| t.to_string(), seconds),
    );
    assert_eq!(replay_json(&["--csv", path_arg(&file)]), EXPECTED);
}

/// Formats a Unix time as a CSV timestamp.
type TimeFormat<'a> = Box<dyn Fn(i64) -> String + 'a>;

#[test]
fn every_timestamp_format_gives_the_same_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let rfc3339 = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let quoted = |t: i64| format!("\"{}\"", rfc3339(t));
    let offset = |t: i64| {
        chrono::DateTime::from_timestamp(t + 7200, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S+02:00")
            .to_string()
    };
    let spaced = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let fractional = |t: i64| format!("{t}.000");
    let forms: [(&str, TimeFormat); 5] = [
        ("TimeStamp,Value,Label", Box::new(rfc3339)),
        ("TIMESTAMP,VALUE,label", Box::new(quoted)),
        ("timestamp,Value,x", Box::new(offset)),
        ("timestamp,value,x", Box::new(spaced)),
        ("Timestamp,value,x", Box::new(fractional)),
    ];
    for (k, (header, time)) in forms.iter().enumerate() {
        let file = write_file(
            dir.path(),
            &format!("form{k}.csv"),
            &csv(header, time, seconds),
        );
        let out = replay_json(&["--csv", path_arg(&file), "--target", "web"]);
        assert_eq!(out, EXPECTED, "{header}");
    }
}

#[test]
fn milliseconds_and_other_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("latency_ms,other,when\n");
    for (t, v) in series() {
        let v = v.map_or(String::new(), |v| format!("{}", v * 1000.0));
        text.push_str(&format!("{v},1,{t}\n"));
    }
    let file = write_file(dir.path(), "web.csv", &text);
    let out = replay_json(&[
        "--csv",
        path_arg(&file),
        "--value-unit",
        "ms",
        "--time-column",
        "When",
        "--value-column",
        "LATENCY_MS",
    ]);
    assert_eq!(out, EXPECTED);
}

#[test]
fn a_bad_row_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str, message: &str| {
        let file = write_file(dir.path(), name, text);
        let out = replay(&["--json", "--csv", path_arg(&file)]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expect = format!("mailpulse: error: {}: {message}\n", file.display());
        assert_eq!(stderr, expect, "{name}");
        assert!(out.stdout.is_empty());
    };
    check(
        "time.csv",
        "timestamp,value\n1709251200,0.2\n1709251210,0.2\n\n2024-03-01T00:00:20,0.2\n",
        "line 5: invalid timestamp \"2024-03-01T00:00:20\" (expected Unix seconds, RFC 3339 or YYYY-MM-DD HH:MM:SS)",
    );
    check(
        "value.csv",
        "timestamp,value\n1709251200,0.2\n1709251210,fast\n",
        "line 3: invalid value \"fast\" (expected a latency in seconds, or nothing for a failed probe)",
    );
    check(
        "short.csv",
        "timestamp,value\n1709251200,0.2\n1709251210\n",
        "line 3: expected at least 2 fields, found 1",
    );
    check(
        "header.csv",
        "time,value\n1709251200,0.2\n",
        "line 1: no column \"timestamp\" in the header (columns: time, value)",
    );
}

/// Issue 21: shuffled rows were replayed in file order, silently (no
/// incident, exit 0). Now the first row that goes back in time is named,
/// and `--sort` replays them in time order.
#[test]
fn shuffled_rows_are_refused_or_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = series();
    // A deterministic shuffle: every row moved by a fixed stride.
    let n = rows.len();
    let shuffled: Vec<(i64, Option<f64>)> = (0..n).map(|k| rows[(k * 37) % n]).collect();
    rows = shuffled;
    let mut text = String::from("timestamp,value\n");
    for (t, v) in &rows {
        text.push_str(&format!("{t},{}\n", seconds(*v)));
    }
    let file = write_file(dir.path(), "web.csv", &text);
    let out = replay(&["--json", "--csv", path_arg(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("mailpulse: error: {}: line ", file.display()))
            && stderr.contains("rows go back in time in all")
            && stderr.contains("pass --sort"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(replay_json(&["--csv", path_arg(&file), "--sort"]), EXPECTED);
}

#[test]
fn settings_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "web.csv",
        &csv("timestamp,value,label", |t| t.to_string(), seconds),
    );
    // A global factor of 5 makes the 4x slowdown healthy; only the failures remain.
    let config = write_file(
        dir.path(),
        "c.toml",
        "[agent]\nlisten = \"127.0.0.1:0\"\n\n[slowdown]\nfactor = 5\n\n\
         [[target]]\nname = \"api\"\nkind = \"http\"\nurl = \"http://x/\"\n\n\
         [[target]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\n\
         [target.slowdown]\nfactor = 3.5\nfor = \"30s\"\n",
    );
    let out = replay_json(&[
        "--csv",
        path_arg(&file),
        "--config",
        path_arg(&config),
        "--target",
        "api",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with(r#"{"target":"api","kind":"down""#),
        "{out}"
    );
    // The target's own table brings the factor back under 4 and shortens `for`.
    let out = replay_json(&["--csv", path_arg(&file), "--config", path_arg(&config)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains(r#""detected_at":"2024-03-01T00:07:10Z""#),
        "{out}"
    );

    let out = replay(&[
        "--csv",
        path_arg(&file),
        "--config",
        path_arg(&config),
        "--target",
        "mail",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("target \"mail\" is not defined in"),
        "{stderr}"
    );

    let bad = write_file(
        dir.path(),
        "bad.toml",
        "[[target]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://x/\"\n[target.slowdown]\nfactor = 1\n",
    );
    let out = replay(&["--csv", path_arg(&file), "--config", path_arg(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.ends_with(
            "bad.toml:6:10: target[0].slowdown.factor: factor must be greater than 1 and at most 100, got 1\n"
        ),
        "{stderr}"
    );
}

#[test]
fn without_json_it_prints_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "web.csv",
        &csv("timestamp,value,label", |t| t.to_string(), seconds),
    );
    let out = replay(&["--csv", path_arg(&file)]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected = "\
TARGET  KIND  STARTED               DETECTED AFTER  RECOVERED             DURATION  PEAK  BASELINE
web     slow  2024-03-01T00:06:40Z  1m              2024-03-01T00:08:40Z  2m        1.5s  200ms
web     down  2024-03-01T00:12:30Z  1m              open                  -         -     200ms
web: 2 incidents (1 open) in 84 samples
";
    assert_eq!(stdout, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_prometheus_series_is_replayed() {
    let values: Vec<String> = series()
        .into_iter()
        .map(|(t, v)| format!("[{t},\"{}\"]", v.map_or("NaN".into(), |v| v.to_string())))
        .collect();
    let values = values.join(",");
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[
            {{"metric":{{"__name__":"probe_duration_seconds","target":"web"}},"values":[{values}]}},
            {{"metric":{{"instance":"mx1:25"}},"values":[[{T0},"0.2"]]}}]}}}}"#
    );
    let server = HttpServer::start().await;
    server.route("/prom/api/v1/query_range", Reply::ok(&body));
    let base = server.url("/prom");
    let out = tokio::task::spawn_blocking(move || {
        replay_json(&[
            "--prometheus",
            &base,
            "--query",
            "probe_duration_seconds{job=\"web\"}",
            "--start",
            "2024-03-01T00:00:00Z",
            "--end",
            "1709252100",
            "--step",
            "10s",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out, EXPECTED);
    let requests = server.requests();
    let request_line = requests[0].head.lines().next().unwrap();
    assert_eq!(
        request_line,
        "GET /prom/api/v1/query_range?query=probe_duration_seconds%7Bjob%3D%22web%22%7D&start=2024-03-01T00%3A00%3A00Z&end=1709252100&step=10s HTTP/1.1"
    );
}

#[test]
fn prometheus_errors_are_reported() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(HttpServer::start());
    let mut answer = Reply::ok(
        r#"{"status":"error","errorType":"bad_data","error":"1:1: parse error: unexpected end of input"}"#,
    );
    answer.status = 400;
    server.route("/api/v1/query_range", answer);
    let out = replay(&[
        "--prometheus",
        &server.url(""),
        "--query",
        "(",
        "--start",
        "0",
        "--end",
        "1",
        "--step",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mailpulse: error: prometheus answered 400 Bad Request: 1:1: parse error: unexpected end of input\n"
    );
}

/// issue 21: a bad row used to quote its whole field, however long (a 50 MB
/// field made a 50 MB error line). Fields are quoted up to 64 characters,
/// then an ellipsis and the field's length.
#[test]
fn errors_quote_long_fields_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let long = "9".repeat(4 * 1024 * 1024) + "x";
    let file = write_file(
        dir.path(),
        "long.csv",
        &format!("timestamp,value\n1709251200,0.2\n1709251210,{long}\n"),
    );
    let out = replay(&["--json", "--csv", path_arg(&file)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expect = format!(
        "mailpulse: error: {}: line 3: invalid value \"{}\"… (4194305 bytes) (expected a latency in seconds, or nothing for a failed probe)\n",
        file.display(),
        "9".repeat(64)
    );
    assert_eq!(stderr, expect);
}
