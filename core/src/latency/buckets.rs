//! The bucket layout shared by every histogram: log-linear over nanoseconds.
//!
//! A value `v < SUB` (64 ns) has a bucket of its own. Above that, the range `[2^e, 2^(e+1))`
//! is split into `SUB` buckets of width `2^(e - SUB_BITS)`. A bucket's width is therefore at most
//! `1/SUB` of its lower bound, and reporting its middle is off by at most `1/(2 SUB)` = 1/128.

/// log2 of the number of sub-buckets per power of two.
const SUB_BITS: u32 = 6;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;

/// Number of buckets needed to cover every `u64` of nanoseconds.
pub(crate) const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// The largest relative error of a reported quantile: `1/128`, under 0.8 %.
///
/// For an exact sample quantile `q`, the reported value `r` satisfies
/// `|r - q| <= q * MAX_RELATIVE_ERROR` (and is exact below 64 ns).
pub const MAX_RELATIVE_ERROR: f64 = 1.0 / (2 * SUB) as f64;

/// The bucket holding `nanos`.
#[inline]
pub(crate) fn index_of(nanos: u64) -> usize {
    if nanos < SUB {
        return nanos as usize;
    }
    let exponent = 63 - nanos.leading_zeros(); // >= SUB_BITS
    let shift = exponent - SUB_BITS;
    let mantissa = (nanos >> shift) - SUB; // in [0, SUB)
    ((shift as u64 + 1) * SUB + mantissa) as usize
}

/// The smallest value in bucket `index` and the bucket's width.
#[inline]
pub(crate) fn bounds_of(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, 1);
    }
    let shift = index / SUB - 1;
    let mantissa = index % SUB;
    ((SUB + mantissa) << shift, 1 << shift)
}

/// The value reported for bucket `index`: its middle (its only value for width-1 buckets).
#[inline]
pub(crate) fn representative(index: usize) -> u64 {
    let (low, width) = bounds_of(index);
    low + (width - 1) / 2
}

/// The 1-based rank of the `p`-quantile among `count` samples: `ceil(p * count)`, at least 1.
/// `None` if `p` is not in `[0, 1]` (NaN included) or `count` is zero.
pub(crate) fn rank_of(p: f64, count: u64) -> Option<u64> {
    if count == 0 || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let rank = (p * count as f64).ceil() as u64;
    Some(rank.clamp(1, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..SUB {
            assert_eq!(bounds_of(index_of(v)), (v, 1));
            assert_eq!(representative(index_of(v)), v);
        }
    }

    #[test]
    fn every_value_lies_in_its_bucket() {
        let mut probes = vec![0, 1, 63, 64, 65, 127, 128, 129, 1_000, 999_999, u64::MAX];
        for shift in 0..64 {
            let p = 1u64 << shift;
            probes.extend([p, p.saturating_sub(1), p.saturating_add(1)]);
        }
        for v in probes {
            let i = index_of(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            let (low, width) = bounds_of(i);
            assert!(low <= v && v - low < width, "{v} not in [{low}, +{width})");
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_tile_the_line() {
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bounds_of(i);
            assert_eq!(low, next, "gap before bucket {i}");
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at 2^64");
    }

    #[test]
    fn width_is_within_the_error_bound() {
        for i in SUB as usize..BUCKETS {
            let (low, width) = bounds_of(i);
            let mid = representative(i);
            let worst = (mid - low).max(low + (width - 1) - mid) as f64;
            assert!(worst / low as f64 <= MAX_RELATIVE_ERROR, "bucket {i}");
        }
    }

    #[test]
    fn ranks() {
        assert_eq!(rank_of(0.0, 10), Some(1));
        assert_eq!(rank_of(0.5, 10), Some(5));
        assert_eq!(rank_of(0.51, 10), Some(6));
        assert_eq!(rank_of(1.0, 10), Some(10));
        assert_eq!(rank_of(0.5, 0), None);
        assert_eq!(rank_of(f64::NAN, 10), None);
        assert_eq!(rank_of(-0.1, 10), None);
        assert_eq!(rank_of(1.1, 10), None);
    }
}
