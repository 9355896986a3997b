//! Reading the Prometheus text format: enough to pick samples by name and labels
//! and to turn a histogram's buckets into quantiles.

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every sample line of a scrape (comments and blank lines skipped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = Vec::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = None;
        let mut key = String::new();
        let mut in_value = false;
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            if in_value {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(match n {
                                'n' => '\n',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        labels.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                        in_value = false;
                    }
                    _ => value.push(c),
                }
            } else {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '"' => in_value = true,
                    '=' | ',' | ' ' => {}
                    _ => key.push(c),
                }
            }
        }
        &body[end? + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The first sample named `name` whose labels include every pair of `with`.
pub fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Option<&'a Sample> {
    samples
        .iter()
        .find(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(v)))
}

/// Cumulative buckets `(le, count)` of histogram `name` (unlabelled), sorted by `le`.
pub fn buckets(samples: &[Sample], name: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut out: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == bucket)
        .filter_map(|s| {
            let le = match s.label("le")? {
                "+Inf" => f64::INFINITY,
                v => v.parse().ok()?,
            };
            Some((le, s.value))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The difference of two cumulative bucket lists of the same histogram.
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, n)| {
            let old = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|(_, c)| *c)
                .unwrap_or(0.0);
            (*le, n - old)
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside the
/// bucket it falls in (as PromQL's `histogram_quantile`).
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev_le);
            }
            let inside = count - prev_count;
            let frac = if inside > 0.0 {
                (rank - prev_count) / inside
            } else {
                1.0
            };
            return Some(prev_le + (le - prev_le) * frac);
        }
        prev_le = le;
        prev_count = count;
    }
    Some(prev_le)
}

/// The share of observations at or below `le` (which must be a bucket bound).
pub fn fraction_below(buckets: &[(f64, f64)], le: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    let at = buckets.iter().find(|(l, _)| (*l - le).abs() < 1e-12)?.1;
    (total > 0.0).then(|| at / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_quantiles() {
        let text = "# HELP x y\nh_bucket{le=\"0.001\"} 90\nh_bucket{le=\"0.01\"} 100\nh_bucket{le=\"+Inf\"} 100\nm{a=\"b\\\"c\",d=\"e\"} 2.5\nplain 7\n";
        let s = parse(text);
        assert_eq!(s.len(), 5);
        assert_eq!(find(&s, "m", &[("a", "b\"c")]).unwrap().value, 2.5);
        assert_eq!(find(&s, "plain", &[]).unwrap().value, 7.0);
        let b = buckets(&s, "h");
        assert_eq!(fraction_below(&b, 0.01), Some(1.0));
        let p99 = bucket_quantile(&b, 0.99).unwrap();
        assert!((p99 - 0.0091).abs() < 1e-9, "{p99}");
    }
}
