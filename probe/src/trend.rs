//! The straight line through a time series: whether RSS is flat after the warm-up (the
//! soak) and whether live bytes climb steadily (the lab's leak verdict).

/// The least-squares line `y = slope · x + intercept` through a set of points, with how
/// well it fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Change of y per unit of x (bytes per second, for a memory series in seconds).
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// The coefficient of determination R² in [0, 1]: the share of y's variation the line
    /// explains. A flat series (every y equal) has nothing to explain and gets 0, so
    /// "fits well and climbs" never holds for it.
    pub r_squared: f64,
}

impl Trend {
    /// Fits `points` (x, y). `None` for fewer than two points or when every x is the same
    /// (no line is defined). O(n), two passes.
    pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
        if points.len() < 2 {
            return None;
        }
        let n = points.len() as f64;
        let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
        let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for (x, y) in points {
            sxx += (x - mean_x) * (x - mean_x);
            syy += (y - mean_y) * (y - mean_y);
            sxy += (x - mean_x) * (y - mean_y);
        }
        if sxx == 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let r_squared = if syy == 0.0 { 0.0 } else { (sxy * sxy) / (sxx * syy) };
        Some(Trend { slope, intercept: mean_y - slope * mean_x, r_squared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_recovered_exactly() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 3.0 * f64::from(x) + 2.0)).collect();
        let trend = Trend::fit(&line).unwrap();
        assert!((trend.slope - 3.0).abs() < 1e-9 && (trend.intercept - 2.0).abs() < 1e-9);
        assert!((trend.r_squared - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_slope_of_a_line_is_its_gradient_and_a_flat_line_has_none() {
        let line: Vec<(f64, f64)> = (0..50).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        assert!((Trend::fit(&line).unwrap().slope - 3.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..50).map(|x| (x as f64, 42.0)).collect();
        assert_eq!(Trend::fit(&flat).map(|trend| trend.slope), Some(0.0));
        assert_eq!(Trend::fit(&[(1.0, 2.0)]), None);
        assert_eq!(Trend::fit(&[(1.0, 2.0), (1.0, 5.0)]), None);
    }

    #[test]
    fn a_flat_series_has_zero_slope_and_explains_nothing() {
        let flat = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)];
        assert_eq!(Trend::fit(&flat), Some(Trend { slope: 0.0, intercept: 5.0, r_squared: 0.0 }));
    }

    #[test]
    fn noise_fits_worse_than_a_line() {
        let noisy = [(0.0, 0.0), (1.0, 10.0), (2.0, 0.0), (3.0, 10.0), (4.0, 1.0)];
        assert!(Trend::fit(&noisy).unwrap().r_squared < 0.2);
    }

    #[test]
    fn fewer_than_two_points_or_one_x_define_no_line() {
        assert_eq!(Trend::fit(&[]), None);
        assert_eq!(Trend::fit(&[(1.0, 2.0)]), None);
        assert_eq!(Trend::fit(&[(1.0, 2.0), (1.0, 5.0)]), None);
    }
}
