//! The size-class table and its O(1) lookup (see the table in the module docs above).
//!
//! Classes 0..8 are 8, 16, …, 64 (8 apart). From 64 on, every doubling `(2^n, 2^(n+1)]`
//! has four classes a quarter of `2^n` apart: `5·2^(n−2)`, `6·2^(n−2)`, `7·2^(n−2)`,
//! `8·2^(n−2)`. A size maps to its class with a leading-zero count, a shift and an add.

/// Number of small size classes.
pub const CLASS_COUNT: usize = 40;

/// The largest small class: larger requests take the large path.
pub const MAX_SMALL: usize = 16 * 1024;

/// The largest alignment a small class serves; larger alignments take the large path.
/// Slab blocks are aligned to the lowest set bit of their size, up to this.
pub const MAX_SMALL_ALIGN: usize = 4096;

const TINY_STEP: usize = 8;
const TINY_CLASSES: usize = 8;
const TINY_LIMIT: usize = TINY_STEP * TINY_CLASSES;

/// The size of every class, smallest first.
pub const CLASS_SIZES: [usize; CLASS_COUNT] = {
    let mut table = [0; CLASS_COUNT];
    let mut class = 0;
    while class < CLASS_COUNT {
        table[class] = class_size(class);
        class += 1;
    }
    table
};

/// The size of class `class`, following the same rule past the table: classes from
/// [`CLASS_COUNT`] on continue four per doubling above [`MAX_SMALL`] (20 KiB, 24 KiB, 28 KiB,
/// 32 KiB, 40 KiB, …), for allocators that serve medium sizes from slabs too
/// (allockit-malloc does, up to 128 KiB). `class` must stay below 240 (the sizes then stay
/// far below `usize::MAX`).
pub const fn class_size(class: usize) -> usize {
    if class < TINY_CLASSES {
        (class + 1) * TINY_STEP
    } else {
        let doubling = (class - TINY_CLASSES) / 4;
        let step = (class - TINY_CLASSES) % 4;
        (5 + step) << (doubling + 4)
    }
}

/// The class of a request of `size` bytes (alignment at most 8): the smallest class whose
/// [`class_size`] holds it. Zero-size requests share the smallest class. The arithmetic
/// holds for any size up to `usize::MAX / 2`, so above [`MAX_SMALL`] it names the extended
/// classes of [`class_size`]; [`class_of`] is the lookup limited to the table.
#[inline(always)]
pub const fn class_of_size(size: usize) -> usize {
    if size <= TINY_LIMIT {
        return size.saturating_sub(1) / TINY_STEP;
    }
    let last = size - 1;
    let log = (usize::BITS - 1 - last.leading_zeros()) as usize;
    TINY_CLASSES + (log - 6) * 4 + ((last >> (log - 2)) - 4)
}

/// The class serving `size` bytes aligned to `align` (a power of two), or `None` for the
/// large path.
///
/// Rounding the size up to a multiple of the alignment is all it takes: every multiple of
/// a class spacing inside its doubling is a class, so a multiple of an alignment at least
/// that spacing is a class itself; and a class whose spacing exceeds the alignment is a
/// multiple of it (both are powers of two). No search either way.
#[inline(always)]
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    let rounded = size.max(1).saturating_add(align - 1) & !(align - 1);
    (rounded <= MAX_SMALL && align <= MAX_SMALL_ALIGN).then(|| class_of_size(rounded))
}

/// The alignment every block of a class gets when its slab is carved from an address so
/// aligned: the lowest set bit of the class size, capped at [`MAX_SMALL_ALIGN`].
pub const fn block_align(class_size: usize) -> usize {
    let lowest_bit = class_size & class_size.wrapping_neg();
    if lowest_bit < MAX_SMALL_ALIGN { lowest_bit } else { MAX_SMALL_ALIGN }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_rises_four_classes_per_doubling_up_to_16_kib() {
        assert_eq!(&CLASS_SIZES[..12], &[8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128]);
        assert_eq!(&CLASS_SIZES[36..], &[10240, 12288, 14336, 16384]);
        assert!(CLASS_SIZES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(CLASS_SIZES[CLASS_COUNT - 1], MAX_SMALL);
    }

    #[test]
    fn extended_classes_continue_the_rule_and_the_lookup_finds_them() {
        assert_eq!(class_size(CLASS_COUNT), 20 * 1024);
        for class in CLASS_COUNT..CLASS_COUNT + 12 {
            let size = class_size(class);
            assert!(size > class_size(class - 1));
            assert_eq!(class_of_size(size), class);
            assert_eq!(class_of_size(size - 1), class);
            assert_eq!(class_of_size(class_size(class - 1) + 1), class);
        }
        assert_eq!(class_size(CLASS_COUNT + 11), 128 * 1024);
    }

    #[test]
    fn lookup_matches_a_search_of_the_table_for_every_size_and_alignment() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
            for size in 0..=MAX_SMALL {
                let searched =
                    CLASS_SIZES.iter().position(|&class| class >= size.max(align) && class % align == 0);
                assert_eq!(class_of(size, align), searched, "size {size} align {align}");
            }
        }
        assert_eq!(class_of(MAX_SMALL + 1, 8), None);
        assert_eq!(class_of(64, 8192), None);
    }

    #[test]
    fn no_request_above_32_bytes_wastes_a_fifth_of_its_block() {
        let mut worst: f64 = 0.0;
        for size in 33..=MAX_SMALL {
            let class = CLASS_SIZES[class_of_size(size)];
            worst = worst.max((class - size) as f64 / class as f64);
        }
        assert!(worst < 0.2, "worst waste {worst}");
        assert!(worst > 0.19, "the bound is tight: {worst}");
        // Tiny requests waste at most 7 bytes.
        assert!((0..=32).all(|size| CLASS_SIZES[class_of_size(size)] - size.max(1) < TINY_STEP));
    }

    #[test]
    fn blocks_of_a_class_are_aligned_for_every_request_it_serves() {
        for size in 0..=MAX_SMALL {
            for align in [16, 32, 64, 4096] {
                if let Some(class) = class_of(size, align) {
                    assert!(block_align(CLASS_SIZES[class]) >= align);
                }
            }
        }
    }
}
