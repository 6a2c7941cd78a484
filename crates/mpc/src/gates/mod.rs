//! The gates. Each module holds a gate's key generation (dealer side) next to
//! its evaluation (`mask` -> opened message, `finish` -> output share).

pub mod batchnorm;
pub mod beaver;
pub mod cmp;
pub mod linear;
pub mod pool;
pub mod reuse;
pub mod small;
pub mod spline;
pub mod train;
pub mod trunc;
pub(crate) mod util;
