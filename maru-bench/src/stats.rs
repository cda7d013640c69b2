//! Latency samples and their summary.

use serde::Serialize;
use std::time::Instant;

/// Latencies of one operation at one size, in nanoseconds.
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    /// Room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Samples {
            ns: Vec::with_capacity(n),
        }
    }

    /// Times `f` once and records it.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.ns.push(t.elapsed().as_nanos() as u64);
        r
    }

    /// Percentiles and mean.
    pub fn summary(mut self) -> Summary {
        self.ns.sort_unstable();
        let n = self.ns.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            self.ns[i] as f64 / 1000.0
        };
        let mean = if n == 0 {
            0.0
        } else {
            self.ns.iter().sum::<u64>() as f64 / n as f64 / 1000.0
        };
        Summary {
            n,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            mean_us: mean,
        }
    }
}

/// Summary of a set of samples (microseconds).
#[derive(Serialize, Clone, Copy, Debug, serde::Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
}
