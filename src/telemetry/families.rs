//! Writing metric families through prometheus-client's encoder: the helpers the stages'
//! collectors share. Names are given as exposed (`cryowatch_readings_total`); a
//! counter's `_total` is the encoder's to add, so it is taken off here.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{BUCKETS, Histogram};

/// The name a family is registered under: a counter's without its `_total`.
fn base(name: &str, kind: MetricType) -> &str {
    match kind {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// Starts a family whose samples carry labels.
pub fn family<'a>(
    enc: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    kind: MetricType,
    help: &str,
) -> Result<MetricEncoder<'a>, fmt::Error> {
    enc.encode_descriptor(base(name, kind), help, None, kind)
}

/// A counter without labels.
pub fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    family(enc, name, MetricType::Counter, help)?.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// A gauge without labels.
pub fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: impl EncodeGaugeValue) -> fmt::Result {
    family(enc, name, MetricType::Gauge, help)?.encode_gauge(&v)
}

/// One labelled counter sample of a family.
pub fn counter_sample(m: &mut MetricEncoder<'_>, labels: &[(&str, &str)], v: u64) -> fmt::Result {
    m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// One labelled gauge sample of a family.
pub fn gauge_sample(m: &mut MetricEncoder<'_>, labels: &[(&str, &str)], v: impl EncodeGaugeValue) -> fmt::Result {
    m.encode_family(&labels)?.encode_gauge(&v)
}

/// One histogram (its `_bucket`, `_sum` and `_count` lines) with the fixed [`BUCKETS`].
pub fn histogram_sample(m: &mut MetricEncoder<'_>, labels: &[(&str, &str)], h: &Histogram) -> fmt::Result {
    let s = h.snapshot();
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = BUCKETS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(s.cumulative)
        .map(|(le, cumulative)| {
            let n = cumulative - below;
            below = cumulative;
            (le, n)
        })
        .collect();
    let mut with = m.encode_family(&labels)?;
    with.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count(), &buckets, None)
}
