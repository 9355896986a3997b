//! Fleet fan-out: one authenticated request to every agent of a fleet, with
//! an outcome per agent, and finding the agents through Prometheus's
//! targets API (the engine that already knows the fleet).
//!
//! [`Prometheus`] runs instant queries over the fleet's metrics there
//! (`mailpulse status --prometheus`).
//!
//! Generic on purpose: [`send_all`] takes a method, a path under the
//! agents' `/api/v1/` and a JSON body, so every fleet command (soak marks,
//! change windows, silences) shares it. Requests go through `outbound`
//! (no redirect followed, so credentials reach only the agent named),
//! concurrently, each bounded by [`AGENT_TIMEOUT`]. Messages name origins
//! only, never a password.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use hyper::Method;
use serde::Deserialize;
use url::Url;

use crate::config::secret::Secret;
use crate::outbound::{self, BodyLimits, Client};

/// Longest wait for one agent's answer.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for Prometheus's targets.
pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from an agent.
const AGENT_MAX_BODY: usize = 1024 * 1024;
/// Largest answer read from Prometheus's targets API.
const TARGETS_MAX_BODY: usize = 16 * 1024 * 1024;

/// Basic-authentication credentials for the agents' API.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user of `[agent.api] write_users` (or `[agent.web]` for reads).
    pub user: String,
    /// Its password; never shown.
    pub password: Secret,
}

impl Credentials {
    fn header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// What one agent answered.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The agent, as its origin (`https://cas01:9717`).
    pub agent: String,
    /// The answer's JSON body on a 2xx, else why it failed (the agent's
    /// `error`, its status, or the connection failure).
    pub result: Result<serde_json::Value, String>,
}

/// Reads an agent's base URL (`http://host:port`, a path is kept as a
/// prefix).
pub fn agent_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text).with_context(|| format!("invalid agent URL {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("invalid agent URL {text:?} (expected http://HOST:PORT or https://HOST:PORT)");
    }
    Ok(url)
}

/// `/api/v1/<path>` of the agent at `base`; a `?query` in `path` is kept
/// as the URL's query.
fn endpoint(base: &Url, path: &str) -> Url {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut url = base.clone();
    url.set_query(query);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(path.split('/'));
    }
    url
}

/// Sends `method` `/api/v1/<path>` (`path` may end in `?query`) with
/// `body` (JSON) to every agent at once, as `credentials`; one outcome per
/// agent, in the given order.
pub async fn send_all(
    agents: &[Url],
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    credentials: Option<&Credentials>,
) -> anyhow::Result<Vec<Outcome>> {
    let client = Client::new(&crate::config::TlsOptions::default(), None)
        .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    let mut headers = vec![("accept", "application/json".to_string())];
    if body.is_some() {
        headers.push(("content-type", "application/json".to_string()));
    }
    if let Some(c) = credentials {
        headers.push(("authorization", c.header()));
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, base) in agents.iter().enumerate() {
        let (client, headers, bytes, method) = (
            client.clone(),
            headers.clone(),
            bytes.clone(),
            method.clone(),
        );
        let url = endpoint(base, path);
        let origin = outbound::origin(base);
        tasks.spawn(async move {
            let headers: Vec<(&str, String)> =
                headers.iter().map(|(k, v)| (*k, v.clone())).collect();
            let limits = BodyLimits {
                success: AGENT_MAX_BODY,
                error: AGENT_MAX_BODY,
            };
            let sent = tokio::time::timeout(
                AGENT_TIMEOUT,
                client.send(method, &url, &headers, bytes, limits),
            )
            .await;
            let result = match sent {
                Err(_) => Err(format!("no answer within {}s", AGENT_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(answer)) => judge(answer),
            };
            (
                i,
                Outcome {
                    agent: origin,
                    result,
                },
            )
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; agents.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, outcome) = done.context("a fleet request panicked")?;
        outcomes[i] = Some(outcome);
    }
    Ok(outcomes.into_iter().flatten().collect())
}

fn judge(answer: outbound::Answer) -> Result<serde_json::Value, String> {
    if let Some(e) = answer.read_error {
        return Err(format!("cannot read the answer: {e}"));
    }
    let json = serde_json::from_slice::<serde_json::Value>(&answer.body);
    if (200..300).contains(&answer.status) {
        return json.map_err(|e| format!("the answer is not JSON: {e}"));
    }
    let detail = json
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string));
    Err(match detail {
        Some(d) => format!("status {}: {d}", answer.status),
        None => format!("status {}", answer.status),
    })
}

#[derive(Deserialize)]
struct TargetsAnswer {
    data: TargetsData,
}

#[derive(Deserialize)]
struct TargetsData {
    #[serde(rename = "activeTargets", default)]
    active: Vec<ActiveTarget>,
}

#[derive(Deserialize)]
struct ActiveTarget {
    #[serde(rename = "scrapeUrl")]
    scrape_url: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "scrapeInterval", default)]
    scrape_interval: Option<String>,
}

/// The agents Prometheus at `prometheus` scrapes (its active targets, those
/// of job `job` when given): each scrape URL's origin, once, sorted.
pub async fn discover(prometheus: &str, job: Option<&str>) -> anyhow::Result<Vec<Url>> {
    Ok(discover_instances(prometheus, job)
        .await?
        .into_iter()
        .map(|a| a.url)
        .collect())
}

/// An agent Prometheus scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scraped {
    /// Its origin (the scrape URL without path and query).
    pub url: Url,
    /// Its `instance` label in Prometheus (what queries answer).
    pub instance: String,
    /// How often Prometheus scrapes it, when Prometheus says.
    pub scrape_interval: Option<Duration>,
}

/// As [`discover`], with each agent's `instance` label.
pub async fn discover_instances(
    prometheus: &str,
    job: Option<&str>,
) -> anyhow::Result<Vec<Scraped>> {
    let mut url =
        Url::parse(prometheus).with_context(|| format!("invalid Prometheus URL {prometheus:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("only http:// and https:// Prometheus URLs are supported, got {prometheus:?}");
    }
    url.path_segments_mut()
        .map_err(|()| anyhow!("invalid Prometheus URL {prometheus:?}"))?
        .pop_if_empty()
        .extend(["api", "v1", "targets"]);
    url.query_pairs_mut().append_pair("state", "active");
    let client = Client::new(&crate::config::TlsOptions::default(), None)
        .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    let limits = BodyLimits {
        success: TARGETS_MAX_BODY,
        error: 4096,
    };
    let headers = [("accept", "application/json".to_string())];
    let answer = tokio::time::timeout(
        PROMETHEUS_TIMEOUT,
        client.send(Method::GET, &url, &headers, Vec::new(), limits),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "prometheus did not answer within {}s",
            PROMETHEUS_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| anyhow!("prometheus request failed: {e}"))?;
    if !(200..300).contains(&answer.status) || answer.cut {
        bail!(
            "prometheus answered status {} to the targets query",
            answer.status
        );
    }
    let parsed: TargetsAnswer =
        serde_json::from_slice(&answer.body).context("cannot read prometheus's targets answer")?;
    let mut agents: Vec<Scraped> = parsed
        .data
        .active
        .into_iter()
        .filter(|t| job.is_none_or(|j| t.labels.get("job").map(String::as_str) == Some(j)))
        .filter_map(|t| {
            let mut u = Url::parse(&t.scrape_url).ok()?;
            u.set_path("/");
            u.set_query(None);
            let instance = t
                .labels
                .get("instance")
                .cloned()
                .unwrap_or_else(|| outbound::origin(&u));
            let scrape_interval = t
                .scrape_interval
                .as_deref()
                .and_then(|d| crate::config::duration::parse_duration(d).ok());
            Some(Scraped {
                url: u,
                instance,
                scrape_interval,
            })
        })
        .collect();
    agents.sort_by(|a, b| a.url.as_str().cmp(b.url.as_str()));
    agents.dedup_by(|a, b| a.url == b.url);
    if agents.is_empty() {
        bail!(
            "prometheus {} has no active targets{}",
            outbound::origin(&url),
            job.map(|j| format!(" of job {j:?}")).unwrap_or_default()
        );
    }
    Ok(agents)
}

/// Longest wait for one instant query's answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from an instant query.
const QUERY_MAX_BODY: usize = 16 * 1024 * 1024;

/// Reads a Prometheus base URL (`http://host:9090`; a path is kept as a
/// prefix).
pub fn prometheus_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text).with_context(|| format!("invalid Prometheus URL {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("only http:// and https:// Prometheus URLs are supported, got {text:?}");
    }
    Ok(url)
}

/// `text` as a PromQL string literal (quoted, `\` and `"` escaped).
pub fn promql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One series of an instant query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels (`__name__` included when Prometheus keeps it).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its value (`NaN` and infinities as Prometheus wrote them).
    pub value: f64,
}

/// A Prometheus server to run instant queries on, through `outbound`.
#[derive(Debug, Clone)]
pub struct Prometheus {
    url: Url,
    client: Client,
}

impl Prometheus {
    /// The Prometheus at `text` (see [`prometheus_url`]).
    pub fn new(text: &str) -> anyhow::Result<Prometheus> {
        let url = prometheus_url(text)?;
        let client = Client::new(&crate::config::TlsOptions::default(), None)
            .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Prometheus { url, client })
    }

    /// Its origin, for messages (never a path or credentials).
    pub fn origin(&self) -> String {
        outbound::origin(&self.url)
    }

    /// Runs `promql` as an instant query evaluated at `at` (Unix seconds),
    /// bounded by [`QUERY_TIMEOUT`]; the vector it answers.
    pub async fn query(&self, promql: &str, at: f64) -> anyhow::Result<Vec<Series>> {
        let (status, body) = self
            .get("query", &[("query", promql), ("time", &format!("{at:.3}"))])
            .await?;
        parse_vector(status, &body)
    }

    /// Runs `promql` as a range query from `start` to `end` (Unix seconds)
    /// every `step` seconds, bounded by [`QUERY_TIMEOUT`]; the matrix it
    /// answers.
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> anyhow::Result<Vec<RangeSeries>> {
        let (status, body) = self
            .get(
                "query_range",
                &[
                    ("query", promql),
                    ("start", &format!("{start:.3}")),
                    ("end", &format!("{end:.3}")),
                    ("step", &format!("{step:.3}")),
                ],
            )
            .await?;
        parse_matrix(status, &body)
    }

    /// `GET /api/v1/<api>?<params>`: the answer's status and body.
    async fn get(&self, api: &str, params: &[(&str, &str)]) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| anyhow!("invalid Prometheus URL"))?
            .pop_if_empty()
            .extend(["api", "v1", api]);
        url.query_pairs_mut().extend_pairs(params);
        let limits = BodyLimits {
            success: QUERY_MAX_BODY,
            error: 4096,
        };
        let headers = [("accept", "application/json".to_string())];
        let answer = tokio::time::timeout(
            QUERY_TIMEOUT,
            self.client
                .send(Method::GET, &url, &headers, Vec::new(), limits),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "prometheus {} did not answer within {}s",
                self.origin(),
                QUERY_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| anyhow!("prometheus request failed: {e}"))?;
        if let Some(e) = &answer.read_error {
            bail!("cannot read the prometheus answer: {e}");
        }
        if answer.cut {
            bail!("cannot read the prometheus answer: longer than {QUERY_MAX_BODY} bytes");
        }
        Ok((answer.status, answer.body))
    }
}

/// One series of a range query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its points: (Unix seconds, value), in time order.
    pub points: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    status: String,
    data: Option<QueryData>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// A query answer's data of `expected` type (`status` and body).
fn parse_data(status: u16, body: &[u8], expected: &str) -> anyhow::Result<serde_json::Value> {
    let parsed = serde_json::from_slice::<QueryAnswer>(body);
    if !(200..300).contains(&status) {
        let detail = parsed.ok().and_then(|a| a.error);
        match detail {
            Some(d) => bail!("prometheus answered status {status}: {d}"),
            None => bail!("prometheus answered status {status}"),
        }
    }
    let answer = parsed.context("invalid prometheus answer")?;
    if answer.status != "success" {
        bail!(
            "prometheus query failed: {}",
            answer.error.unwrap_or(answer.status)
        );
    }
    let data = answer
        .data
        .ok_or_else(|| anyhow!("prometheus answer has no data"))?;
    if data.result_type != expected {
        bail!(
            "prometheus answered a {}, expected a {expected}",
            data.result_type
        );
    }
    Ok(match data.result {
        serde_json::Value::Null => serde_json::Value::Array(Vec::new()),
        result => result,
    })
}

fn number(text: &str) -> anyhow::Result<f64> {
    text.parse::<f64>()
        .map_err(|_| anyhow!("invalid value {text:?} in the prometheus answer"))
}

/// The series of an instant query's answer (`status` and body).
fn parse_vector(status: u16, body: &[u8]) -> anyhow::Result<Vec<Series>> {
    let items: Vec<VectorItem> = serde_json::from_value(parse_data(status, body, "vector")?)
        .context("invalid prometheus answer")?;
    items
        .into_iter()
        .map(|item| {
            Ok(Series {
                labels: item.metric,
                value: number(&item.value.1)?,
            })
        })
        .collect()
}

/// The series of a range query's answer (`status` and body).
fn parse_matrix(status: u16, body: &[u8]) -> anyhow::Result<Vec<RangeSeries>> {
    let items: Vec<MatrixItem> = serde_json::from_value(parse_data(status, body, "matrix")?)
        .context("invalid prometheus answer")?;
    items
        .into_iter()
        .map(|item| {
            let points = item
                .values
                .iter()
                .map(|(at, v)| Ok((*at, number(v)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(RangeSeries {
                labels: item.metric,
                points,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_go_under_api_v1_of_the_agent() {
        let base = agent_url("http://127.0.0.1:9717").unwrap();
        assert_eq!(
            endpoint(&base, "soak/start").as_str(),
            "http://127.0.0.1:9717/api/v1/soak/start"
        );
        let prefixed = agent_url("https://proxy.example.org/cas01/").unwrap();
        assert_eq!(
            endpoint(&prefixed, "soak/runs").as_str(),
            "https://proxy.example.org/cas01/api/v1/soak/runs"
        );
        assert_eq!(
            endpoint(&base, "incidents?run=a+b&limit=5").as_str(),
            "http://127.0.0.1:9717/api/v1/incidents?run=a+b&limit=5"
        );
        assert!(agent_url("ftp://x").is_err());
    }

    #[test]
    fn instant_query_answers_are_read_or_refused_with_the_reason() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"target":"owa","instance":"cas01"},"value":[1764000000.5,"0.25"]},
            {"metric":{"target":"imap"},"value":[1764000000.5,"NaN"]}]}}"#;
        let series = parse_vector(200, body).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels["instance"], "cas01");
        assert_eq!(series[0].value, 0.25);
        assert!(series[1].value.is_nan());
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(
            parse_vector(400, bad).unwrap_err().to_string(),
            "prometheus answered status 400: parse error at char 3"
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(200, matrix)
            .unwrap_err()
            .to_string()
            .contains("expected a vector"));
        assert!(parse_vector(502, b"<html>")
            .unwrap_err()
            .to_string()
            .ends_with("status 502"));
    }

    #[test]
    fn range_query_answers_are_read_as_series_of_points() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"target":"owa","instance":"cas01"},"values":[[1764000000,"0.25"],[1764000001.5,"NaN"]]}]}}"#;
        let series = parse_matrix(200, body).unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels["target"], "owa");
        assert_eq!(series[0].points[0], (1764000000.0, 0.25));
        assert!(series[0].points[1].1.is_nan());
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_matrix(200, vector)
            .unwrap_err()
            .to_string()
            .contains("expected a matrix"));
        let empty = br#"{"status":"success","data":{"resultType":"matrix"}}"#;
        assert!(parse_matrix(200, empty).unwrap().is_empty());
    }

    #[test]
    fn promql_strings_are_quoted_and_escaped() {
        assert_eq!(promql_string("mailpulse"), r#""mailpulse""#);
        assert_eq!(promql_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert!(prometheus_url("ftp://x").is_err());
        assert!(prometheus_url("http://127.0.0.1:9090").is_ok());
    }

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials {
            user: "ops".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
