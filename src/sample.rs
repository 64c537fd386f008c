//! Which coordinates a sampled check (`--sample K`) evaluates: K of them, seeded, spread
//! over the tensors in proportion to their sizes with every tensor represented, so that a
//! bug confined to one small tensor (a bias) still has coordinates checked.

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::model::ParamLayout;

/// `k` distinct flat indices, sorted. Every tensor gets at least one; the rest are shared
/// in proportion to tensor sizes (largest remainders first), each tensor's drawn uniformly
/// without replacement.
pub fn choose(layout: &ParamLayout, k: usize, seed: u64) -> Result<Vec<usize>> {
    let tensors = layout.tensors();
    let total = layout.len();
    if k < tensors.len() {
        return Err(Error::Option(format!(
            "a sample of {k} cannot represent all {} tensors; sample at least {}",
            tensors.len(),
            tensors.len()
        )));
    }
    if k >= total {
        return Ok((0..total).collect());
    }
    // One each, then the remaining k - T in proportion to size (capped at the size).
    let sizes: Vec<usize> = tensors.iter().map(|t| t.shape[0] * t.shape[1]).collect();
    let mut counts = vec![1usize; sizes.len()];
    let spare = k - sizes.len();
    let room: usize = sizes.iter().map(|s| s - 1).sum();
    let mut remainders = Vec::with_capacity(sizes.len());
    for (i, &s) in sizes.iter().enumerate() {
        let share = spare as f64 * (s - 1) as f64 / room as f64;
        counts[i] += share.floor() as usize;
        remainders.push((share - share.floor(), i));
    }
    remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = k - counts.iter().sum::<usize>();
    for &(_, i) in remainders.iter().cycle() {
        if left == 0 {
            break;
        }
        if counts[i] < sizes[i] {
            counts[i] += 1;
            left -= 1;
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(k);
    for ((t, &size), &count) in tensors.iter().zip(&sizes).zip(&counts) {
        chosen.extend(
            rand::seq::index::sample(&mut rng, size, count)
                .into_iter()
                .map(|local| t.offset + local),
        );
    }
    chosen.sort_unstable();
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::NetworkSpec;

    #[test]
    fn samples_are_seeded_distinct_and_cover_every_tensor() {
        let p = NetworkSpec::new(vec![784, 128, 64, 1], 4, 1)
            .unwrap()
            .generate();
        let layout = p.net().layout();
        let a = choose(layout, 1000, 9).unwrap();
        assert_eq!(a, choose(layout, 1000, 9).unwrap());
        assert_ne!(a, choose(layout, 1000, 10).unwrap());
        assert_eq!(a.len(), 1000);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        for t in layout.tensors() {
            let inside = a.iter().filter(|&&i| t.range().contains(&i)).count();
            assert!(inside >= 1, "{} has no sampled coordinate", t.name);
        }
        // W1 holds 92% of the parameters and gets about that share.
        let w1 = layout.tensor_named("W1").unwrap();
        let in_w1 = a.iter().filter(|&&i| w1.range().contains(&i)).count();
        assert!((880..=940).contains(&in_w1), "{in_w1}");
        assert!(choose(layout, 5, 1).is_err());
        assert_eq!(
            choose(layout, layout.len() + 3, 1).unwrap().len(),
            layout.len()
        );
    }
}
