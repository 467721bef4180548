//! The hash for the maps the per-event path touches: correlation,
//! alert policy, resolution, metrics, cgroup names. A few
//! multiply-xorshift rounds over the key's integers, seeded per process.
//! std's SipHash cost several times more on a path taken twice per
//! connection attempt (measured: a tenth of the loop's CPU in a storm).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Keyed per process, so a local user cannot pick colliding destinations
/// ahead of time; the maps are bounded anyway. An address hashes as one
/// u32 or u128.
#[derive(Debug, Clone, Copy)]
pub struct FastHash(u64);

impl Default for FastHash {
    fn default() -> Self {
        FastHash(RandomState::new().hash_one(0x7463_7073_7461_7465u64) | 1)
    }
}

impl BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn mix(&mut self, x: u64) {
        let h = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 29);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, x: u8) {
        self.mix(u64::from(x));
    }
    fn write_u16(&mut self, x: u16) {
        self.mix(u64::from(x));
    }
    fn write_u32(&mut self, x: u32) {
        self.mix(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }
    fn write_u128(&mut self, x: u128) {
        self.mix(x as u64);
        self.mix((x >> 64) as u64);
    }
    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }
    fn write_isize(&mut self, x: isize) {
        self.mix(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
