//! `tailguard._native`: tailguard's Rust state machines for Python.

use pyo3::prelude::*;

/// The native half of the `tailguard` Python package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
