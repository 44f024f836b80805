//! How much work an experiment does: the documented sizes or the test suite's.
//!
//! Every experiment's options type has a `full()` and a `quick()` constructor; [`AtScale`]
//! is the one place a [`Scale`] picks between them (implemented for each options type next
//! to the experiments, in `experiments/mod.rs`), so the binary, `run_all` and the tests
//! never spell the choice out again.

/// How much work the experiments do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The documented experiment sizes (a few minutes in all on a loaded 2-core machine).
    Full,
    /// Small sizes for the test suite (a few seconds in all).
    Quick,
}

impl Scale {
    /// `Quick` when `quick` holds (the `--quick` flag), else `Full`.
    pub fn quick_if(quick: bool) -> Scale {
        if quick { Scale::Quick } else { Scale::Full }
    }
}

/// Options that exist at both scales.
pub trait AtScale: Sized {
    /// The options at `scale`: the type's `full()` or `quick()`.
    fn at(scale: Scale) -> Self;
}
