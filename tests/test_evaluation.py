"""Ranking metrics: hand-computed cases, a plain numpy reference, CUHK03 single-gallery-shot."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.evaluation import evaluate_rank, evaluate_rank_cuhk03, query_rank_stats


# --------------------------------------------------------------------------- references
def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Plain numpy: stable argsort of every row, drop junk, cumulate (torchreid-style)."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(distmat)):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        hits = (g_pids[order][keep] == q_pids[i]).astype(np.float64)
        if not hits.any():
            continue
        cmc = np.minimum(np.cumsum(hits), 1.0)
        cmc = np.concatenate([cmc, np.ones(max(0, max_rank - len(cmc)))])[:max_rank]
        all_cmc.append(cmc)
        positions = np.flatnonzero(hits) + 1.0
        all_ap.append(np.mean(np.arange(1, len(positions) + 1) / positions))
        all_inp.append(len(positions) / positions[-1])
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp))


def reference_cuhk03(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, num_repeats, seed):
    """Single-gallery-shot with the documented sampling rule, written with plain loops."""
    rng = np.random.default_rng(seed)
    nq, ng = distmat.shape
    cmc_sum = np.zeros(max_rank)
    rr_sum = 0.0
    for _ in range(num_repeats):
        keys = rng.random((nq, ng))
        cmcs, rrs = [], []
        for i in range(nq):
            eligible = np.flatnonzero(g_camids != q_camids[i])
            sampled = []
            for pid in np.unique(g_pids[eligible]):
                cand = eligible[g_pids[eligible] == pid]
                sampled.append(cand[np.argmin(keys[i, cand])])
            sampled = np.sort(np.asarray(sampled, dtype=np.int64))
            if not np.any(g_pids[sampled] == q_pids[i]):
                continue
            order = sampled[np.argsort(distmat[i, sampled], kind="stable")]
            rank = int(np.flatnonzero(g_pids[order] == q_pids[i])[0])
            cmcs.append((np.arange(max_rank) >= rank).astype(np.float64))
            rrs.append(1.0 / (rank + 1))
        cmc_sum += np.mean(cmcs, axis=0)
        rr_sum += np.mean(rrs)
    return cmc_sum / num_repeats, rr_sum / num_repeats


def random_case(rng, nq, ng, num_ids, num_cams, integer=False, dtype=np.float64):
    q_pids = rng.integers(0, num_ids, nq)
    g_pids = rng.integers(0, num_ids, ng)
    q_cams = rng.integers(0, num_cams, nq)
    g_cams = rng.integers(0, num_cams, ng)
    if integer:
        dist = rng.integers(0, 5, (nq, ng)).astype(dtype)
    else:
        dist = rng.random((nq, ng)).astype(dtype)
    return dist, q_pids, g_pids, q_cams, g_cams


# --------------------------------------------------------------------------- hand-computed
# Gallery (index: pid, camid). pid 0 is a Market-1501 style distractor: an ordinary non-match.
G_PIDS = np.array([1, 0, 1, 2, 1, 3])
G_CAMS = np.array([0, 1, 1, 1, 2, 0])
Q_PIDS = np.array([1, 4, 2, 1])
Q_CAMS = np.array([0, 0, 0, 2])
DIST = np.array(
    [
        # A (pid 1, cam 0): g0 is junk (same pid+cam). Order g3 .1, g1 .2, g2 .3, g5 .4, g4 .5;
        # matches g2, g4 at ranks 3, 5: AP = (1/3 + 2/5) / 2 = 11/30, INP = 2/5.
        [0.0, 0.2, 0.3, 0.1, 0.5, 0.4],
        # B (pid 4): no gallery image of pid 4 -> skipped.
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
        # C (pid 2, cam 0): all tied -> index order g0 g1 g2 g3 g4 g5; match g3 at rank 4:
        # AP = 1/4, INP = 1/4.
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        # D (pid 1, cam 2): g4 junk. Order g3 .0, g5 .1, then the tie at .2 by index: g0, g1, g2.
        # Matches g0 (rank 3, it beats the tied distractor g1) and g2 (rank 5, after g1):
        # AP = (1/3 + 2/5) / 2 = 11/30, INP = 2/5.
        [0.2, 0.2, 0.2, 0.0, 0.0, 0.1],
    ]
)


def test_hand_computed_case():
    cmc, mean_ap, minp = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=6,
                                       return_minp=True)
    # Valid queries A, C, D with first-match ranks 3, 4, 3.
    np.testing.assert_allclose(cmc, [0, 0, 2 / 3, 1, 1, 1], rtol=0, atol=1e-15)
    assert cmc.dtype == np.float64 and cmc.shape == (6,)
    assert mean_ap == pytest.approx((11 / 30 + 1 / 4 + 11 / 30) / 3, abs=1e-15)  # 59/180
    assert minp == pytest.approx((2 / 5 + 1 / 4 + 2 / 5) / 3, abs=1e-15)  # 7/20
    first, ap, inp = query_rank_stats(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    np.testing.assert_array_equal(first, [2, -1, 3, 2])
    np.testing.assert_allclose(ap, [11 / 30, 0, 1 / 4, 11 / 30], atol=1e-15)
    np.testing.assert_allclose(inp, [2 / 5, 0, 1 / 4, 2 / 5], atol=1e-15)
    two = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3)
    assert len(two) == 2 and two[0].shape == (3,)


def test_cmc_longer_than_gallery_saturates_and_inputs_may_be_tensors():
    cmc, mean_ap = evaluate_rank(torch.tensor(DIST, dtype=torch.float32), torch.tensor(Q_PIDS),
                                 G_PIDS.tolist(), Q_CAMS, G_CAMS, max_rank=50)
    assert cmc.shape == (50,) and np.all(cmc[3:] == 1.0)
    assert mean_ap == pytest.approx(59 / 180, abs=1e-7)


def test_junk_is_neither_match_nor_distractor():
    # Query pid 7 cam 0; gallery: junk (7, 0) at distance 0, match (7, 1) at 1, other id at 2.
    cmc, mean_ap, minp = evaluate_rank(np.array([[0.0, 1.0, 2.0]]), [7], [7, 7, 8], [0],
                                       [0, 1, 0], max_rank=3, return_minp=True)
    np.testing.assert_array_equal(cmc, [1, 1, 1])
    assert mean_ap == 1.0 and minp == 1.0
    # The distractor ahead of the match counts: rank 2.
    cmc, mean_ap = evaluate_rank(np.array([[0.0, 1.0, 0.5]]), [7], [7, 7, 8], [0], [0, 1, 0],
                                 max_rank=3)
    np.testing.assert_array_equal(cmc, [0, 1, 1])
    assert mean_ap == 0.5


@pytest.mark.parametrize(
    "nq,ng,num_ids,num_cams,integer,dtype",
    [
        (40, 300, 30, 3, False, np.float64),
        (40, 300, 30, 3, False, np.float32),
        (50, 400, 25, 2, True, np.float64),  # integer distances 0..4: ties everywhere
        (30, 500, 3, 4, True, np.float32),  # ~120 matches per query: binary-search path
        (20, 200, 2, 2, False, np.float64),  # ~100 matches, no ties
        (25, 7, 4, 2, True, np.float64),  # gallery shorter than max_rank
    ],
)
def test_equals_numpy_reference(nq, ng, num_ids, num_cams, integer, dtype):
    rng = np.random.default_rng(nq * ng + num_ids)
    case = random_case(rng, nq, ng, num_ids, num_cams, integer, dtype)
    cmc, mean_ap, minp = evaluate_rank(*case, max_rank=20, return_minp=True)
    ref_cmc, ref_ap, ref_inp = reference_rank(*case, max_rank=20)
    np.testing.assert_allclose(cmc, ref_cmc, rtol=0, atol=1e-12)
    assert abs(mean_ap - ref_ap) < 1e-9
    assert abs(minp - ref_inp) < 1e-9


def test_integer_distmat_and_skipped_queries_equal_reference():
    rng = np.random.default_rng(5)
    dist, q_pids, g_pids, q_cams, g_cams = random_case(rng, 60, 150, 40, 2, integer=True)
    q_pids[:10] = 1000  # identities absent from the gallery: skipped
    dist = dist.astype(np.int32)
    cmc, mean_ap = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    ref_cmc, ref_ap, _ = reference_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
    assert abs(mean_ap - ref_ap) < 1e-9


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_rank(np.zeros((2, 3)), [5, 6], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="no valid query"):  # only junk left
        evaluate_rank(np.zeros((1, 2)), [1], [1, 1], [0], [0, 0])
    bad = DIST.copy()
    bad[2, 4] = np.nan
    with pytest.raises(ValueError, match="NaN.*query row 2"):
        evaluate_rank(bad, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    bad = DIST.copy()
    bad[1, 0] = np.nan  # a skipped query's row is checked too
    with pytest.raises(ValueError, match="NaN.*query row 1"):
        evaluate_rank(bad, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="g_pids"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS[:-1], Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match="q_camids"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS[:2], G_CAMS)
    with pytest.raises(ValueError, match="empty"):
        evaluate_rank(np.zeros((0, 3)), [], [1, 2, 3], [], [0, 0, 0])
    with pytest.raises(ValueError, match="2D"):
        evaluate_rank(np.zeros(3), [1], [1, 2, 3], [0], [1, 1, 1])
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=0)
    with pytest.raises(ValueError, match="non-integer"):
        evaluate_rank(DIST, Q_PIDS + 0.5, G_PIDS, Q_CAMS, G_CAMS)


# --------------------------------------------------------------------------- CUHK03 sgs
def test_cuhk03_single_shot_hand_computed():
    # Query pid 1 from cam 0. Cam-0 gallery images (g0: pid 5 at .0) are all excluded.
    # Other cameras hold exactly one image per identity -> no randomness:
    # g1 pid 1 (.5), g2 pid 2 (.4), g3 pid 3 (.6), g4 pid 4 (.5, tie with the match, later index).
    dist = np.array([[0.0, 0.5, 0.4, 0.6, 0.5]])
    cmc, mean_rr = evaluate_rank_cuhk03(dist, [1], [5, 1, 2, 3, 4], [0], [0, 1, 1, 1, 1],
                                        max_rank=4, num_repeats=3, seed=7)
    np.testing.assert_array_equal(cmc, [0, 1, 1, 1])  # rank 2 (only g2 is closer)
    assert mean_rr == 0.5


def test_cuhk03_single_shot_sampling_averages_over_repeats():
    # Query pid 1 (cam 0); pid 1 has two cam-1 images at .1 and .9, pid 2 one at .5:
    # the sampled match is ranked 1st or 2nd with probability 1/2 each.
    dist = np.array([[0.1, 0.9, 0.5]])
    cmc, mean_rr = evaluate_rank_cuhk03(dist, [1], [1, 1, 2], [0], [1, 1, 1], max_rank=2,
                                        num_repeats=400, seed=0)
    assert 0.4 < cmc[0] < 0.6 and cmc[1] == 1.0
    assert mean_rr == pytest.approx((1 + cmc[0]) / 2, abs=1e-12)


@pytest.mark.parametrize("integer", [False, True])
def test_cuhk03_single_shot_equals_reference(integer):
    rng = np.random.default_rng(11 + integer)
    case = random_case(rng, 30, 120, 15, 4, integer=integer)
    cmc, mean_rr = evaluate_rank_cuhk03(*case, max_rank=10, num_repeats=10, seed=3)
    ref_cmc, ref_rr = reference_cuhk03(*case, max_rank=10, num_repeats=10, seed=3)
    np.testing.assert_allclose(cmc, ref_cmc, atol=1e-12)
    assert abs(mean_rr - ref_rr) < 1e-12
    again = evaluate_rank_cuhk03(*case, max_rank=10, num_repeats=10, seed=3)
    np.testing.assert_array_equal(again[0], cmc)
    other = evaluate_rank_cuhk03(*case, max_rank=10, num_repeats=10, seed=4)
    assert not np.array_equal(other[0], cmc)


def test_cuhk03_single_shot_errors():
    with pytest.raises(ValueError, match="no valid query"):  # the match is in the query's camera
        evaluate_rank_cuhk03(np.zeros((1, 2)), [1], [1, 2], [0], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank_cuhk03(np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1])
    with pytest.raises(ValueError, match="num_repeats"):
        evaluate_rank_cuhk03(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], num_repeats=0)
