//! Retry.
mod budget;
pub use self::budget::{RetryBudget, RetryBudgetBuilder};
