//! Measured models of the Bitcoin network by region, which a scenario picks by name
//! (`[network] model = "bitcoin-2019"`): the share of nodes in each region, the mean
//! one-way latency between each pair of regions and how a link's latency spreads around
//! it, and each region's upload and download bandwidth.
//!
//! - `bitcoin-2015` and `bitcoin-2019`: the tables SimBlock ships (its
//!   `NetworkConfiguration`), from measurements of the Bitcoin network in those years; six
//!   regions, one bandwidth per region and direction, latency Pareto-distributed around
//!   each pair's mean as SimBlock draws it.
//! - `gervais-2016`: the model of Gervais et al. (CCS 2016), their simulator's Bitcoin
//!   configuration: six regions, per-pair latency, and bandwidth drawn per node from each
//!   region's measured distribution.
//!
//! [`BITCOIN_2015_OUT_DEGREE_CDF`] is the out-degree distribution SimBlock ships with the
//! 2015 tables (`topology = "random:bitcoin-2015"`), and [`GERVAIS_2016_CONNECTION_EDGES`]
//! Gervais et al.'s connection counts (`topology = "random:gervais-2016"`).
//!
//! The numbers are facts measured by others; they are typed here from the published
//! configurations, with the source named beside each table.

/// How a link's latency spreads around its pair of regions' mean.
#[derive(Clone, Copy, Debug)]
pub enum LatencyDraw {
    /// SimBlock's Pareto: scale `mean - 5` ms and shape `mean / 5` (a tail of a few
    /// milliseconds above the scale).
    SimBlockPareto,
    /// A Pareto of this shape whose mean is the pair's mean.
    Pareto {
        /// Its shape (above 1, so the mean exists).
        shape: f64,
    },
}

impl LatencyDraw {
    /// A latency in milliseconds for a pair whose mean is `mean_ms`, from `unit` in [0, 1).
    pub fn draw(self, mean_ms: f64, unit: f64) -> f64 {
        // 1 - unit is in (0, 1], so the power is finite.
        let u = 1.0 - unit;
        match self {
            LatencyDraw::SimBlockPareto => {
                let shape = (0.2 * mean_ms).max(1.0);
                let scale = (mean_ms - 5.0).max(0.1);
                scale / u.powf(1.0 / shape)
            }
            LatencyDraw::Pareto { shape } => {
                let scale = mean_ms * (shape - 1.0) / shape;
                scale / u.powf(1.0 / shape)
            }
        }
    }
}

/// A region's bandwidth in one direction.
#[derive(Clone, Copy, Debug)]
pub enum Bandwidth {
    /// Every node the same, Mbit/s.
    Fixed(f64),
    /// Drawn per node: equally likely values, Mbit/s (each the mean of one of as many bands
    /// of equal probability of a measured distribution, so the mean is kept).
    Bands(&'static [f64]),
}

impl Bandwidth {
    /// A node's bandwidth in Mbit/s, from `unit` in [0, 1).
    pub fn draw(self, unit: f64) -> f64 {
        match self {
            Bandwidth::Fixed(mbps) => mbps,
            Bandwidth::Bands(bands) => {
                let band = ((unit * bands.len() as f64) as usize).min(bands.len() - 1);
                bands[band]
            }
        }
    }
}

/// A model of the network by region.
#[derive(Debug)]
pub struct RegionModel {
    /// Its name in a scenario.
    pub name: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// The regions, in the order of the tables.
    pub regions: &'static [&'static str],
    /// The share of nodes in each region.
    pub shares: &'static [f64],
    /// Mean one-way latency in milliseconds between two regions (`[a][b]`, symmetric: only
    /// `a <= b` is read).
    pub latency_ms: &'static [&'static [f64]],
    /// How a link's latency spreads around its mean.
    pub latency: LatencyDraw,
    /// Each region's upload bandwidth.
    pub upload: &'static [Bandwidth],
    /// Each region's download bandwidth.
    pub download: &'static [Bandwidth],
}

impl RegionModel {
    /// The region a node falls in, from `unit` in [0, 1) (by the regions' shares).
    pub fn place(&self, unit: f64) -> usize {
        pick_weighted(self.shares, unit)
    }

    /// The region called `name`, by index.
    pub fn region(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|&region| region == name)
    }
}

/// The index `unit` in [0, 1) falls on when each index takes its weight's share of the
/// unit interval (the last one if rounding leaves it past the end).
pub fn pick_weighted(weights: &[f64], unit: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut left = unit * total;
    for (index, &weight) in weights.iter().enumerate() {
        if left < weight {
            return index;
        }
        left -= weight;
    }
    weights.len().saturating_sub(1)
}

/// The models' names.
pub const NAMES: &[&str] = &["uniform", "bitcoin-2015", "bitcoin-2019", "gervais-2016"];

/// The model called `name` (`None` for `uniform`, which is the scenario's own figures, and
/// for an unknown name).
pub fn named(name: &str) -> Option<&'static RegionModel> {
    MODELS.iter().find(|model| model.name == name)
}

const REGIONS: &[&str] = &[
    "north-america",
    "europe",
    "south-america",
    "asia-pacific",
    "japan",
    "australia",
];

/// Mbit/s, per region in the order of [`REGIONS`].
const fn fixed(mbps: [f64; 6]) -> [Bandwidth; 6] {
    [
        Bandwidth::Fixed(mbps[0]),
        Bandwidth::Fixed(mbps[1]),
        Bandwidth::Fixed(mbps[2]),
        Bandwidth::Fixed(mbps[3]),
        Bandwidth::Fixed(mbps[4]),
        Bandwidth::Fixed(mbps[5]),
    ]
}

const MODELS: &[RegionModel] = &[
    RegionModel {
        name: "bitcoin-2015",
        source: "SimBlock's NetworkConfiguration (Bitcoin, 2015): REGION_DISTRIBUTION_BITCOIN_2015, LATENCY_2015, UPLOAD_ and DOWNLOAD_BANDWIDTH_2015",
        regions: REGIONS,
        shares: &[0.3869, 0.5159, 0.0113, 0.0574, 0.0119, 0.0166],
        latency_ms: &[
            &[36.0, 119.0, 255.0, 310.0, 154.0, 208.0],
            &[119.0, 12.0, 221.0, 242.0, 266.0, 350.0],
            &[255.0, 221.0, 137.0, 347.0, 256.0, 269.0],
            &[310.0, 242.0, 347.0, 99.0, 172.0, 278.0],
            &[154.0, 266.0, 256.0, 172.0, 9.0, 163.0],
            &[208.0, 350.0, 269.0, 278.0, 163.0, 22.0],
        ],
        latency: LatencyDraw::SimBlockPareto,
        upload: &fixed([4.7, 8.1, 1.8, 5.3, 3.4, 5.2]),
        download: &fixed([25.0, 24.0, 6.5, 10.0, 17.5, 14.0]),
    },
    RegionModel {
        name: "bitcoin-2019",
        source: "SimBlock's NetworkConfiguration (Bitcoin, 2019): REGION_DISTRIBUTION_BITCOIN_2019, LATENCY_2019, UPLOAD_ and DOWNLOAD_BANDWIDTH_2019",
        regions: REGIONS,
        shares: &[0.3316, 0.4998, 0.0090, 0.1177, 0.0224, 0.0195],
        latency_ms: &[
            &[32.0, 124.0, 184.0, 198.0, 151.0, 189.0],
            &[124.0, 11.0, 227.0, 237.0, 252.0, 294.0],
            &[184.0, 227.0, 88.0, 325.0, 301.0, 322.0],
            &[198.0, 237.0, 325.0, 85.0, 58.0, 198.0],
            &[151.0, 252.0, 301.0, 58.0, 12.0, 126.0],
            &[189.0, 294.0, 322.0, 198.0, 126.0, 16.0],
        ],
        latency: LatencyDraw::SimBlockPareto,
        upload: &fixed([19.2, 20.7, 5.8, 15.7, 10.2, 11.3]),
        download: &fixed([52.0, 40.0, 18.0, 22.8, 22.8, 29.9]),
    },
    RegionModel {
        name: "gervais-2016",
        source: "Gervais et al., CCS 2016, their simulator's Bitcoin topology (bitcoin-topology-helper.cc): region shares, regionLatencies with a Pareto of shape mean/5 per link, and per-region bandwidth histograms (here 40 bands of equal probability each)",
        regions: REGIONS,
        shares: &[0.3869, 0.5159, 0.0113, 0.0574, 0.0119, 0.0166],
        latency_ms: &[
            &[35.5, 119.49, 254.79, 310.11, 154.36, 207.91],
            &[119.49, 11.61, 221.08, 241.9, 266.45, 350.07],
            &[254.79, 221.08, 137.09, 346.65, 255.95, 268.91],
            &[310.11, 241.9, 346.65, 99.46, 172.24, 277.8],
            &[154.36, 266.45, 255.95, 172.24, 8.76, 162.59],
            &[207.91, 350.07, 268.91, 277.8, 162.59, 21.72],
        ],
        // ns-3's Pareto with mean L and shape L / 5 is SimBlock's law.
        latency: LatencyDraw::SimBlockPareto,
        upload: &[
            Bandwidth::Bands(NORTH_AMERICA_UPLOAD),
            Bandwidth::Bands(EUROPE_UPLOAD),
            Bandwidth::Bands(SOUTH_AMERICA_UPLOAD),
            Bandwidth::Bands(ASIA_PACIFIC_UPLOAD),
            Bandwidth::Bands(JAPAN_UPLOAD),
            Bandwidth::Bands(AUSTRALIA_UPLOAD),
        ],
        download: &[
            Bandwidth::Bands(NORTH_AMERICA_DOWNLOAD),
            Bandwidth::Bands(EUROPE_DOWNLOAD),
            Bandwidth::Bands(SOUTH_AMERICA_DOWNLOAD),
            Bandwidth::Bands(ASIA_PACIFIC_DOWNLOAD),
            Bandwidth::Bands(JAPAN_DOWNLOAD),
            Bandwidth::Bands(AUSTRALIA_DOWNLOAD),
        ],
    },
];

// Gervais et al.'s per-region bandwidth, Mbit/s: each of their histograms (2,000 measured
// nodes per region and direction) cut into 40 bands of equal probability, each band
// standing for its mean. (A band at 3.14 Mbit/s is a measurement, not pi.)
#[allow(clippy::approx_constant)]
const NORTH_AMERICA_DOWNLOAD: &[f64] = &[
    0.17, 0.32, 0.47, 0.63, 0.86, 1.10, 1.43, 1.87, 2.29, 2.64, 3.20, 3.99, 4.70, 5.42, 6.20, 7.04,
    8.06, 9.23, 10.39, 11.68, 13.23, 14.94, 16.47, 17.59, 19.01, 20.17, 21.11, 22.58, 24.68, 27.82,
    31.95, 37.09, 41.54, 48.12, 52.21, 55.73, 62.17, 76.84, 90.93, 212.28,
];
#[allow(clippy::approx_constant)]
const EUROPE_DOWNLOAD: &[f64] = &[
    0.19, 0.38, 0.57, 0.87, 1.21, 1.60, 2.03, 2.58, 3.14, 3.68, 4.31, 4.97, 5.57, 6.20, 6.93, 7.63,
    8.30, 9.05, 9.76, 10.48, 11.50, 12.63, 13.87, 15.39, 16.84, 18.38, 20.31, 22.48, 24.67, 27.03,
    29.99, 33.58, 37.97, 42.55, 47.69, 54.84, 63.76, 79.29, 107.77, 180.64,
];
#[allow(clippy::approx_constant)]
const SOUTH_AMERICA_DOWNLOAD: &[f64] = &[
    0.13, 0.20, 0.26, 0.33, 0.39, 0.46, 0.52, 0.59, 0.70, 0.82, 0.94, 1.06, 1.20, 1.35, 1.50, 1.69,
    1.93, 2.18, 2.48, 2.76, 3.04, 3.37, 3.75, 4.15, 4.55, 4.97, 5.42, 5.96, 6.51, 7.12, 7.84, 8.63,
    9.62, 10.73, 12.21, 14.28, 16.73, 21.51, 31.23, 60.46,
];
#[allow(clippy::approx_constant)]
const ASIA_PACIFIC_DOWNLOAD: &[f64] = &[
    0.15, 0.25, 0.35, 0.45, 0.55, 0.69, 0.86, 1.04, 1.23, 1.42, 1.61, 1.81, 2.01, 2.24, 2.48, 2.74,
    3.00, 3.27, 3.55, 3.89, 4.24, 4.60, 5.02, 5.53, 6.17, 6.88, 7.59, 8.31, 9.20, 10.14, 11.23,
    12.40, 13.99, 16.03, 18.50, 22.22, 27.59, 35.26, 49.79, 96.63,
];
#[allow(clippy::approx_constant)]
const JAPAN_DOWNLOAD: &[f64] = &[
    0.14, 0.21, 0.28, 0.35, 0.43, 0.50, 0.57, 0.70, 0.86, 1.02, 1.20, 1.40, 1.60, 1.87, 2.16, 2.52,
    2.91, 3.23, 3.47, 3.81, 4.41, 5.02, 5.83, 6.72, 7.80, 9.06, 10.61, 12.94, 16.06, 19.98, 23.24,
    26.03, 28.91, 35.74, 43.48, 56.45, 68.94, 74.26, 93.21, 123.31,
];
#[allow(clippy::approx_constant)]
const AUSTRALIA_DOWNLOAD: &[f64] = &[
    0.15, 0.26, 0.37, 0.47, 0.58, 0.74, 0.92, 1.09, 1.28, 1.48, 1.71, 2.03, 2.38, 2.73, 3.09, 3.57,
    4.03, 4.51, 5.03, 5.46, 5.92, 6.42, 7.04, 7.70, 8.65, 9.62, 10.57, 11.63, 12.68, 14.11, 16.08,
    18.36, 21.81, 26.07, 28.34, 31.52, 40.58, 58.81, 82.97, 100.62,
];
#[allow(clippy::approx_constant)]
const NORTH_AMERICA_UPLOAD: &[f64] = &[
    0.12, 0.16, 0.21, 0.27, 0.34, 0.40, 0.47, 0.55, 0.64, 0.72, 0.82, 0.91, 1.00, 1.07, 1.15, 1.31,
    1.47, 1.64, 1.92, 2.24, 2.50, 2.85, 3.26, 3.52, 3.69, 4.07, 4.42, 4.84, 5.21, 5.49, 5.72, 5.90,
    6.76, 7.84, 8.55, 9.32, 10.24, 12.07, 17.32, 44.35,
];
#[allow(clippy::approx_constant)]
const EUROPE_UPLOAD: &[f64] = &[
    0.13, 0.18, 0.25, 0.35, 0.44, 0.51, 0.60, 0.71, 0.84, 1.01, 1.21, 1.42, 1.65, 1.90, 2.18, 2.48,
    2.75, 2.97, 3.26, 3.59, 3.88, 4.20, 4.64, 5.08, 5.52, 6.06, 6.74, 7.47, 8.08, 8.93, 9.89,
    10.87, 12.16, 14.17, 16.71, 19.95, 23.93, 29.27, 37.08, 62.89,
];
#[allow(clippy::approx_constant)]
const SOUTH_AMERICA_UPLOAD: &[f64] = &[
    0.11, 0.13, 0.15, 0.17, 0.19, 0.21, 0.24, 0.26, 0.29, 0.32, 0.34, 0.37, 0.39, 0.42, 0.46, 0.49,
    0.54, 0.60, 0.67, 0.73, 0.79, 0.86, 0.93, 1.03, 1.23, 1.46, 1.74, 1.93, 2.06, 2.30, 2.52, 2.75,
    2.99, 3.22, 3.49, 3.83, 4.32, 5.09, 6.35, 15.44,
];
#[allow(clippy::approx_constant)]
const ASIA_PACIFIC_UPLOAD: &[f64] = &[
    0.11, 0.14, 0.16, 0.18, 0.22, 0.28, 0.35, 0.42, 0.50, 0.57, 0.66, 0.75, 0.85, 0.97, 1.11, 1.27,
    1.45, 1.67, 1.87, 2.09, 2.33, 2.56, 2.75, 2.99, 3.34, 3.85, 4.40, 5.04, 5.74, 6.51, 7.06, 7.62,
    8.48, 9.85, 11.74, 13.49, 15.41, 19.63, 26.25, 40.52,
];
#[allow(clippy::approx_constant)]
const JAPAN_UPLOAD: &[f64] = &[
    0.12, 0.16, 0.19, 0.24, 0.30, 0.36, 0.43, 0.51, 0.62, 0.75, 0.86, 0.97, 1.09, 1.23, 1.35, 1.49,
    1.66, 1.79, 1.92, 2.07, 2.23, 2.37, 2.55, 2.78, 3.05, 3.36, 3.82, 4.17, 4.44, 4.78, 5.19, 5.50,
    5.78, 6.08, 6.42, 6.88, 7.76, 9.54, 11.94, 22.25,
];
#[allow(clippy::approx_constant)]
const AUSTRALIA_UPLOAD: &[f64] = &[
    0.12, 0.17, 0.22, 0.28, 0.34, 0.40, 0.49, 0.56, 0.61, 0.65, 0.68, 0.71, 0.73, 0.75, 0.77, 0.79,
    0.82, 0.85, 0.88, 0.95, 1.14, 1.27, 1.57, 1.92, 2.23, 2.49, 2.75, 3.14, 3.57, 3.98, 4.38, 4.99,
    5.77, 9.18, 15.96, 21.67, 23.40, 24.49, 26.44, 35.97,
];

/// Gervais et al.'s connections per node (either way): uniform within `[1, 4)` for 10% of
/// nodes, `[4, 8)` for 40%, ... `[25, 119)` for 1% (mean 8.9); their miners have 700-800.
pub const GERVAIS_2016_CONNECTION_EDGES: &[usize] = &[1, 4, 8, 12, 16, 25, 119];
/// Each bin's weight, per cent.
pub const GERVAIS_2016_CONNECTION_WEIGHTS: &[f64] = &[10.0, 40.0, 30.0, 13.0, 6.0, 1.0];

/// The out-degree distribution SimBlock ships with its 2015 tables, as a cumulative
/// distribution: `[k]` is the share of nodes with at most `k` outbound connections (1 to
/// 20, mean 8.6).
pub const BITCOIN_2015_OUT_DEGREE_CDF: &[f64] = &[
    0.0, 0.025, 0.050, 0.075, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.85, 0.90, 0.95,
    0.97, 0.97, 0.98, 0.99, 0.995, 1.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_is_whole_and_symmetric_in_its_reading() {
        for model in MODELS {
            let regions = model.regions.len();
            assert_eq!(model.shares.len(), regions, "{}", model.name);
            assert_eq!(model.latency_ms.len(), regions, "{}", model.name);
            assert!(model.latency_ms.iter().all(|row| row.len() == regions));
            assert_eq!(model.upload.len(), regions, "{}", model.name);
            assert_eq!(model.download.len(), regions, "{}", model.name);
            assert!(
                (model.shares.iter().sum::<f64>() - 1.0).abs() < 0.02,
                "{}",
                model.name
            );
            assert!(NAMES.contains(&model.name));
        }
        let cdf = BITCOIN_2015_OUT_DEGREE_CDF;
        assert!(cdf.windows(2).all(|w| w[0] <= w[1]));
        assert!((cdf.last().copied().unwrap_or(0.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn draws_follow_their_distributions() {
        // A Pareto whose mean is the pair's: the sample mean over many units comes close.
        let n = 20_000;
        let mean = (0..n)
            .map(|i| LatencyDraw::Pareto { shape: 5.0 }.draw(100.0, (i as f64 + 0.5) / n as f64))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 100.0).abs() < 2.0, "{mean}");
        // SimBlock's draw never goes below its scale.
        assert!(LatencyDraw::SimBlockPareto.draw(100.0, 0.0) >= 95.0);
        let bands = Bandwidth::Bands(&[1.0, 10.0, 10.0, 10.0]);
        assert_eq!(bands.draw(0.2), 1.0);
        assert_eq!(bands.draw(0.3), 10.0);
        assert_eq!(bands.draw(0.999), 10.0);
        // The 2015 out-degrees average 8.6.
        let cdf = BITCOIN_2015_OUT_DEGREE_CDF;
        let mean: f64 = (1..cdf.len())
            .map(|k| k as f64 * (cdf[k] - cdf[k - 1]))
            .sum();
        assert!((mean - 8.645).abs() < 1e-9, "{mean}");
    }
}
