//! Fuzz target `json_and_cursor`: the invariants are in `imghost::fuzzing::json_and_cursor`.
#![no_main]

use imghost::fuzzing;

// Counting allocations is how the target checks its memory bound.
#[global_allocator]
static ALLOC: fuzzing::alloc::CountingAlloc = fuzzing::alloc::CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::json_and_cursor(data));
