//! Zipf-distributed ranks in O(1) time and memory.
//!
//! Name popularity on a resolver is heavy-tailed. A CDF table for a million
//! names would cost memory and cache misses per draw, so this uses
//! rejection-inversion sampling (Hörmann & Derflinger 1996, the algorithm in
//! Apache Commons `RejectionInversionZipfSampler`), implemented here so the
//! draws are pinned for reproducibility.

use super::rng::Rng;

/// Sampler for ranks `1..=n` with `P(k) ∝ k^-s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    /// `n ≥ 1`, `s ≥ 0` (`s = 0` is uniform).
    pub fn new(n: u64, s: f64) -> Self {
        assert!(n >= 1, "zipf needs at least one element");
        assert!(s >= 0.0 && s.is_finite(), "zipf exponent must be ≥ 0");
        let mut z = Zipf {
            n,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        z.h_x1 = z.h_integral(1.5) - 1.0;
        z.h_n = z.h_integral(n as f64 + 0.5);
        z.cut = 2.0 - z.h_integral_inv(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `0..n` (zero-based: 0 is the most popular).
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        if self.s == 0.0 || self.n == 1 {
            return rng.below(self.n);
        }
        loop {
            let u = self.h_n + rng.unit() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inv(u);
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.cut || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k - 1;
            }
        }
    }

    /// Exact probability of zero-based rank `k` (for tests and reports).
    pub fn pmf(&self, k: u64) -> f64 {
        let norm: f64 = (1..=self.n).map(|i| (i as f64).powf(-self.s)).sum();
        ((k + 1) as f64).powf(-self.s) / norm
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inv(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1+x)/x`, stable near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1)/x`, stable near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(n: u64, s: f64, draws: usize) -> Vec<usize> {
        let z = Zipf::new(n, s);
        let mut r = Rng::new(42);
        let mut h = vec![0usize; n as usize];
        for _ in 0..draws {
            h[z.sample(&mut r) as usize] += 1;
        }
        h
    }

    #[test]
    fn frequencies_match_pmf() {
        for s in [0.8, 1.0, 1.2] {
            let n = 1000;
            let draws = 400_000;
            let h = histogram(n, s, draws);
            let z = Zipf::new(n, s);
            for k in [0u64, 1, 2, 9, 99] {
                let expect = z.pmf(k) * draws as f64;
                let got = h[k as usize] as f64;
                let sd = expect.sqrt();
                assert!(
                    (got - expect).abs() < 5.0 * sd + 5.0,
                    "s={s} rank {k}: got {got}, expected {expect:.0}"
                );
            }
        }
    }

    #[test]
    fn rank_one_vs_two_ratio() {
        let h = histogram(10_000, 1.0, 300_000);
        let ratio = h[0] as f64 / h[1] as f64;
        assert!((ratio - 2.0).abs() < 0.1, "ratio {ratio}");
        // Heavy tail: the tail half of the names still gets some traffic.
        assert!(h[5000..].iter().sum::<usize>() > 0);
    }

    #[test]
    fn uniform_and_degenerate() {
        let h = histogram(10, 0.0, 100_000);
        assert!(h.iter().all(|&c| (9_000..11_000).contains(&c)));
        let h = histogram(1, 1.0, 100);
        assert_eq!(h[0], 100);
    }
}
