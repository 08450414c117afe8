//! The confidence intervals of `compare`.
//!
//! - Rates and throughput: the per-interval values of both sides, a 95 % interval for the
//!   difference of their means from Welch's standard error (normal quantile 1.96; the
//!   intervals of a run are taken as independent, which a ramp makes optimistic, so budgets
//!   stay the first gate). A summary's merged time-series rows (a long run's older rows
//!   cover several intervals) weigh the seconds they cover ([`welch_ci_weighted`]).
//! - Percentiles: bootstrap from the histograms, seeded. Resampling `n` values from a
//!   histogram and taking the `k`-th smallest is the same as drawing `U ~ Beta(k, n−k+1)`
//!   and reading the histogram's quantile at `U` (the `k`-th order statistic of `n`
//!   uniforms), so each replicate costs one Beta draw and one binary search instead of `n`
//!   draws: the exact bootstrap distribution, at any sample count.
use barrage_core::sink::TrendSink;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Beta, Distribution};

/// Bootstrap replicates per percentile.
pub const REPLICATES: usize = 2000;
/// The default seed of the bootstrap (`--seed` changes it).
pub const DEFAULT_SEED: u64 = 0x5eed_ba77;
const Z95: f64 = 1.959_963_984_540_054;

/// The weighted mean of `(value, weight)` pairs, and the variance of one unit of weight
/// around it: `Σ w (x − m)² / (n − 1)`. A value that averages `w` units (a time-series row
/// of `w` seconds) varies as `σ² / w`, so this estimates `σ²`, and the mean's variance is
/// `σ² / Σw`; with equal weights it is the textbook sample variance times the weight.
fn mean_var(xs: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    let w: f64 = xs.iter().map(|p| p.1).sum();
    let m = xs.iter().map(|(x, w)| x * w).sum::<f64>() / w;
    let v = xs.iter().map(|(x, w)| w * (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v, w)
}

/// The mean of `(value, weight)` pairs weighted by their weights (`NaN` without weight).
pub fn weighted_mean(xs: &[(f64, f64)]) -> f64 {
    xs.iter().map(|(x, w)| x * w).sum::<f64>() / xs.iter().map(|p| p.1).sum::<f64>()
}

/// 95 % interval of `mean(b) − mean(a)` (Welch); `None` with fewer than 2 values a side.
pub fn welch_ci(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let ones = |v: &[f64]| v.iter().map(|x| (*x, 1.0)).collect::<Vec<_>>();
    welch_ci_weighted(&ones(a), &ones(b))
}

/// [`welch_ci`] of `(value, weight)` pairs: the difference of the weighted means, each
/// value standing for `weight` units (a row of a time series that covers several intervals
/// weighs its seconds, see [`mean_var`]); `None` with fewer than 2 values a side or a side
/// without weight.
pub fn welch_ci_weighted(a: &[(f64, f64)], b: &[(f64, f64)]) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va, wa) = mean_var(a);
    let (mb, vb, wb) = mean_var(b);
    if wa <= 0.0 || wb <= 0.0 {
        return None;
    }
    let se = (va / wa + vb / wb).sqrt();
    let d = mb - ma;
    Some((d - Z95 * se, d + Z95 * se))
}

/// A histogram as a cumulative table, for quantile look-ups by binary search.
pub struct Cdf {
    /// `(cumulative count, highest equivalent value)` per recorded bucket.
    steps: Vec<(u64, u64)>,
    n: u64,
}

impl Cdf {
    pub fn of(t: &TrendSink) -> Cdf {
        let mut steps = Vec::new();
        let mut cum = 0;
        for v in t.hist.iter_recorded() {
            cum += v.count_at_value();
            steps.push((cum, t.hist.highest_equivalent(v.value_iterated_to())));
        }
        Cdf { steps, n: cum }
    }

    /// The value of rank `r` (1-based, clamped to `1..=n`).
    pub fn at_rank(&self, r: u64) -> u64 {
        let r = r.clamp(1, self.n.max(1));
        let i = self.steps.partition_point(|&(c, _)| c < r);
        self.steps.get(i).map_or(0, |s| s.1)
    }

    /// `F⁻¹(u)`: the smallest value whose cumulative share reaches `u`.
    pub fn quantile(&self, u: f64) -> u64 {
        self.at_rank((u * self.n as f64).ceil() as u64)
    }
}

/// Bootstrap replicates of the `p`-th percentile (0..100) of a histogram.
pub fn bootstrap_percentile(t: &TrendSink, p: f64, rng: &mut StdRng, reps: usize) -> Vec<f64> {
    let cdf = Cdf::of(t);
    let n = cdf.n;
    if n == 0 {
        return Vec::new();
    }
    let k = ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n) as f64;
    let beta = Beta::new(k, n as f64 - k + 1.0).expect("k in 1..=n gives valid shapes");
    (0..reps)
        .map(|_| cdf.quantile(beta.sample(rng)) as f64)
        .collect()
}

/// 95 % bootstrap interval of `percentile(b) − percentile(a)`, in the histograms' unit.
pub fn percentile_diff_ci(a: &TrendSink, b: &TrendSink, p: f64, seed: u64) -> Option<(f64, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let ra = bootstrap_percentile(a, p, &mut rng, REPLICATES);
    let rb = bootstrap_percentile(b, p, &mut rng, REPLICATES);
    if ra.is_empty() || rb.is_empty() {
        return None;
    }
    let mut d: Vec<f64> = rb.iter().zip(&ra).map(|(y, x)| y - x).collect();
    d.sort_by(f64::total_cmp);
    let at = |q: f64| d[((q * (d.len() - 1) as f64).round() as usize).min(d.len() - 1)];
    Some((at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(values: impl IntoIterator<Item = u64>) -> TrendSink {
        let mut t = TrendSink::default();
        for v in values {
            t.record(v);
        }
        t
    }

    /// A merged row stands for its intervals: one row of 10 s at the mean of ten 1 s rows
    /// gives the same mean as those rows, and a narrower interval than 10 rows of 1 s.
    #[test]
    fn weighted_rows_count_for_their_time() {
        let fine: Vec<(f64, f64)> = (0..20).map(|i| (100.0 + (i % 5) as f64, 1.0)).collect();
        let mut coarse: Vec<(f64, f64)> = fine[..10].to_vec();
        coarse.push((weighted_mean(&fine[10..]), 10.0));
        assert_eq!(weighted_mean(&fine), weighted_mean(&coarse));
        let other: Vec<(f64, f64)> = fine.iter().map(|(x, w)| (x + 5.0, *w)).collect();
        let (lo, hi) = welch_ci_weighted(&fine, &other).unwrap();
        assert!(lo < 5.0 && 5.0 < hi, "({lo}, {hi})");
        let (lo2, hi2) = welch_ci_weighted(&coarse, &other).unwrap();
        assert!(lo2 < 5.0 && 5.0 < hi2, "({lo2}, {hi2})");
        // equal weights are the plain Welch interval
        let plain: Vec<f64> = fine.iter().map(|p| p.0).collect();
        let shifted: Vec<f64> = other.iter().map(|p| p.0).collect();
        assert_eq!(welch_ci(&plain, &shifted), Some((lo, hi)));
        assert_eq!(welch_ci_weighted(&[(1.0, 0.0), (2.0, 0.0)], &fine), None);
    }

    #[test]
    fn welch_brackets_the_difference() {
        let a: Vec<f64> = (0..50).map(|i| 100.0 + (i % 5) as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        let (lo, hi) = welch_ci(&a, &b).unwrap();
        assert!(lo > 9.0 && hi < 11.0 && lo < 10.0 && hi > 10.0, "{lo} {hi}");
        let (lo, hi) = welch_ci(&a, &a).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
        assert_eq!(welch_ci(&[1.0], &a), None);
        // constant and equal: a zero-width interval at zero, which does not exclude zero
        assert_eq!(welch_ci(&[0.0, 0.0], &[0.0, 0.0]), Some((0.0, 0.0)));
    }

    #[test]
    fn cdf_ranks() {
        let c = Cdf::of(&trend([10, 20, 20, 30]));
        let cases = [(1, 10), (2, 20), (3, 20), (4, 30), (9, 30), (0, 10)];
        for (r, want) in cases {
            assert_eq!(c.at_rank(r), want, "rank {r}");
        }
        assert_eq!(c.quantile(0.5), 20);
        assert_eq!(c.quantile(1.0), 30);
    }

    #[test]
    fn bootstrap_is_seeded_and_sees_a_shift() {
        let a = trend((1..=2000).map(|i| 1000 + i % 997));
        let b = trend((1..=2000).map(|i| 1300 + i % 997));
        let ci = percentile_diff_ci(&a, &b, 95.0, 7).unwrap();
        assert_eq!(
            ci,
            percentile_diff_ci(&a, &b, 95.0, 7).unwrap(),
            "same seed, same CI"
        );
        assert!(ci.0 > 200.0 && ci.1 < 400.0, "{ci:?}");
        let same = percentile_diff_ci(&a, &a, 95.0, 7).unwrap();
        assert!(same.0 <= 0.0 && same.1 >= 0.0, "{same:?}");
    }
}
