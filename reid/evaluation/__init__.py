"""Re-ID evaluation: CMC / mAP / mINP ranking, feature-level blockwise evaluation, protocols."""
from reid.evaluation.features import evaluate_features, evaluate_vehicleid, pairwise_distance
from reid.evaluation.rank import (
    aggregate_rank_stats,
    evaluate_rank,
    evaluate_rank_cuhk03,
    query_rank_stats,
)
from reid.evaluation.report import format_results, print_results

__all__ = [
    "aggregate_rank_stats",
    "evaluate_features",
    "evaluate_rank",
    "evaluate_rank_cuhk03",
    "evaluate_vehicleid",
    "format_results",
    "pairwise_distance",
    "print_results",
    "query_rank_stats",
]
