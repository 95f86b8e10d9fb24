//! Cross-component tests for tailguard; the tests live in `tests/`.
