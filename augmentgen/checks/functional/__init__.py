"""Pure metric math on tensors: no state, no RNG inside (randomness arrives as ``rng``)."""

from augmentgen.checks.functional.distances import (
    kth_neighbour_distances,
    nearest_neighbours,
    pairs_within,
    pairwise_distances,
)
from augmentgen.checks.functional.diversity import (
    class_spread_ratio,
    kmeans,
    mean_pairwise_distance,
    mode_coverage,
    vendi_score,
)
from augmentgen.checks.functional.duplicates import (
    content_hashes,
    duplicate_clusters,
    duplicate_fraction,
    hamming_distances,
    perceptual_hash,
)
from augmentgen.checks.functional.fidelity import (
    fid,
    frechet_distance,
    frechet_distance_low_rank,
    gaussian_stats,
    kid,
    mmd2_poly_unbiased,
    prdc,
)
from augmentgen.checks.functional.labels import confusion_matrix, inception_score, label_agreement
from augmentgen.checks.functional.memorization import MemorizationScores, memorization_scores, train_radii
from augmentgen.checks.functional.reconstruction import psnr, ssim
from augmentgen.checks.functional.stability import metric_spread, summarize_health_log

__all__ = [
    "MemorizationScores",
    "class_spread_ratio",
    "confusion_matrix",
    "content_hashes",
    "duplicate_clusters",
    "duplicate_fraction",
    "fid",
    "frechet_distance",
    "frechet_distance_low_rank",
    "gaussian_stats",
    "hamming_distances",
    "inception_score",
    "kid",
    "kmeans",
    "kth_neighbour_distances",
    "label_agreement",
    "mean_pairwise_distance",
    "memorization_scores",
    "metric_spread",
    "mmd2_poly_unbiased",
    "mode_coverage",
    "nearest_neighbours",
    "pairs_within",
    "pairwise_distances",
    "perceptual_hash",
    "prdc",
    "psnr",
    "ssim",
    "summarize_health_log",
    "train_radii",
    "vendi_score",
]
