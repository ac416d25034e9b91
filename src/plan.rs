//! The pure planning core: no I/O, time passed in. Today: attribute mapping; the neutral model,
//! the diff to a `Plan`, the guard and checkpoint rules join here with the sync engine.

pub mod mapping;
