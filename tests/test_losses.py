"""Losses: values by hand, a plain-Python route, micro-batch additivity, gradient isolation."""

from __future__ import annotations

import math

import pytest
import torch

from seele_agents.algos.losses import (
    AGGREGATIONS,
    LOSS_TYPES,
    LossType,
    clipped_surrogate,
    k3_kl,
    policy_loss,
)

METRIC_KEYS = {
    "loss/policy",
    "loss/kl",
    "loss/imitation",
    "loss/total",
    "clip/low_fraction",
    "clip/high_fraction",
    "policy/ratio_mean",
}

# -- clipped surrogate: -min(ratio·A, clip(ratio, 1 - eps_low, 1 + eps_high)·A) ----------------


@pytest.mark.parametrize(
    ("adv", "ratio", "eps_low", "eps_high", "loss", "low", "high"),
    [
        (1.0, 1.5, 0.2, 0.2, -1.2, False, True),  # -min(1.5, 1.2)
        (1.0, 1.1, 0.2, 0.2, -1.1, False, False),  # inside: -min(1.1, 1.1)
        (1.0, 0.5, 0.2, 0.2, -0.5, False, False),  # -min(0.5, 0.8): the unclipped term
        (-1.0, 0.5, 0.2, 0.2, 0.8, True, False),  # -min(-0.5, -0.8)
        (-1.0, 0.9, 0.2, 0.2, 0.9, False, False),  # inside: -min(-0.9, -0.9)
        (-1.0, 1.5, 0.2, 0.2, 1.5, False, False),  # -min(-1.5, -1.2): the unclipped term
        (2.0, 1.5, 0.2, 0.28, -2.56, False, True),  # -min(3.0, 1.28 · 2)
        (2.0, 1.25, 0.2, 0.28, -2.5, False, False),  # 1.25 < 1.28: -min(2.5, 2.5)
        (-0.5, 0.7, 0.2, 0.2, 0.4, True, False),  # -min(-0.35, 0.8 · -0.5 = -0.4)
        (-0.5, 0.7, 0.4, 0.2, 0.35, False, False),  # floor 0.6 < 0.7: -(-0.35)
        (0.0, 3.0, 0.2, 0.2, 0.0, False, False),  # no advantage, no loss, no clip flag
    ],
)
def test_clipped_surrogate_by_hand(
    adv: float, ratio: float, eps_low: float, eps_high: float, loss: float, low: bool, high: bool
) -> None:
    logp = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    out, low_clip, high_clip = clipped_surrogate(
        logp,
        torch.zeros(1, 1, dtype=torch.float64),
        torch.tensor([adv], dtype=torch.float64),
        epsilon_low=eps_low,
        epsilon_high=eps_high,
    )
    assert out.item() == pytest.approx(loss, abs=1e-12)
    assert (low_clip.item(), high_clip.item()) == (low, high)
    # d/dlogp of -ratio·A is -ratio·A; a clipped term is constant in logp.
    out.sum().backward()
    expected_grad = 0.0 if (low or high) else -ratio * adv
    assert logp.grad.item() == pytest.approx(expected_grad, abs=1e-12)


def test_clipped_surrogate_broadcasts_one_advantage_per_sequence() -> None:
    logp = torch.log(torch.tensor([[1.0, 1.5], [1.0, 0.5]]))  # ratios, old_logp = 0
    loss, low, high = clipped_surrogate(
        logp, torch.zeros(2, 2), torch.tensor([1.0, -1.0]), epsilon_low=0.2, epsilon_high=0.2
    )
    # row 0 (A = +1): [-1, -1.2]; row 1 (A = -1): [1, 0.8]
    torch.testing.assert_close(loss, torch.tensor([[-1.0, -1.2], [1.0, 0.8]]))
    assert low.tolist() == [[False, False], [False, True]]
    assert high.tolist() == [[False, True], [False, False]]


# -- k3 KL: exp(ref - logp) - (ref - logp) - 1 -----------------------------------------------------


@pytest.mark.parametrize(
    ("p", "p_ref", "expected"),
    [
        (0.5, 0.25, 0.5 + math.log(2) - 1),  # d = ln 0.5: 0.5 - ln 0.5 - 1 = 0.193147
        (0.25, 0.5, 2 - math.log(2) - 1),  # d = ln 2: 2 - ln 2 - 1 = 0.306853
        (0.3, 0.3, 0.0),  # equal: exactly 0
        (0.9, 0.9 * math.e, math.e - 1 - 1),  # d = 1: e - 2 = 0.718282
    ],
)
def test_k3_by_hand(p: float, p_ref: float, expected: float) -> None:
    logp, ref = torch.tensor([math.log(p), math.log(p_ref)], dtype=torch.float64)
    out = k3_kl(logp, ref)
    assert out.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_k3_is_exactly_zero_when_equal_and_nonnegative() -> None:
    gen = torch.Generator().manual_seed(0)
    logp = -5 * torch.rand(50, 20, generator=gen)
    ref = -5 * torch.rand(50, 20, generator=gen)
    assert torch.equal(k3_kl(logp, logp), torch.zeros(50, 20))
    assert (k3_kl(logp, ref) >= 0).all()


def test_k3_keeps_precision_for_tiny_differences() -> None:
    # For small d, exp(d) - d - 1 = d²/2 + d³/6 + ...; exp(d) - 1 - d in float64 would lose most
    # digits of 5e-17 to cancellation.
    d = 1e-8
    out = k3_kl(torch.tensor([0.0], dtype=torch.float64), torch.tensor([d], dtype=torch.float64))
    assert out.item() == pytest.approx(d**2 / 2 + d**3 / 6, rel=1e-6)


def test_k3_is_an_unbiased_estimate_of_kl() -> None:
    # Independent route: E_{x~π}[k3] = Σ π (ρ - ln ρ - 1) with ρ = π_ref/π = Σ π_ref - 1 + KL = KL.
    gen = torch.Generator().manual_seed(1)
    pi = torch.softmax(torch.randn(7, generator=gen, dtype=torch.float64), 0)
    ref = torch.softmax(torch.randn(7, generator=gen, dtype=torch.float64), 0)
    expectation = (pi * k3_kl(pi.log(), ref.log())).sum()
    kl = sum(a * math.log(a / b) for a, b in zip(pi.tolist(), ref.tolist(), strict=True))
    assert expectation.item() == pytest.approx(kl, rel=1e-10)


# -- aggregations ----------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
MASK = torch.tensor([[True, True, False, False], [True, True, True, False]])
COUNTS = {"num_sequences": 2, "num_tokens": 5, "max_new_tokens": 4}


@pytest.mark.parametrize(
    ("name", "mask", "counts", "expected"),
    [
        ("seq_mean", MASK, COUNTS, 3.75),  # ((1+2)/2 + (5+6+7)/3) / 2 = (1.5 + 6) / 2
        ("token_mean", MASK, COUNTS, 4.2),  # (1+2+5+6+7) / 5 = 21/5
        ("seq_sum_constant", MASK, COUNTS, 2.625),  # 21 / (2 · 4)
        # Whole-minibatch counts larger than this batch: 4 sequences, 10 tokens, 8 max tokens.
        ("seq_mean", MASK, {**COUNTS, "num_sequences": 4}, 1.875),  # 7.5 / 4
        ("token_mean", MASK, {**COUNTS, "num_tokens": 10}, 2.1),  # 21 / 10
        ("seq_sum_constant", MASK, {**COUNTS, "max_new_tokens": 8}, 1.3125),  # 21 / 16
        # Sequence 0 has no masked token: it adds 0 (not NaN) to the GRPO mean.
        ("seq_mean", MASK & torch.tensor([[False], [True]]), {**COUNTS, "num_tokens": 3}, 3.0),
        ("token_mean", torch.zeros(2, 4, dtype=torch.bool), {**COUNTS, "num_tokens": 0}, 0.0),
    ],
)
def test_aggregations_by_hand(name: str, mask: torch.Tensor, counts: dict, expected: float) -> None:
    assert AGGREGATIONS[name](VALUES, mask, **counts).item() == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_aggregations_ignore_unmasked_nan(name: str) -> None:
    values = VALUES.masked_fill(~MASK, math.nan)
    torch.testing.assert_close(
        AGGREGATIONS[name](values, MASK, **COUNTS), AGGREGATIONS[name](VALUES, MASK, **COUNTS)
    )


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_aggregations_add_up_over_micro_batches(name: str) -> None:
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(7, 6, generator=gen, dtype=torch.float64)
    mask = torch.rand(7, 6, generator=gen) < 0.6
    mask[3] = False  # an empty sequence too
    counts = {"num_sequences": 7, "num_tokens": int(mask.sum()), "max_new_tokens": 6}
    whole = AGGREGATIONS[name](values, mask, **counts)
    parts = sum(
        AGGREGATIONS[name](v, m, **counts)
        for v, m in zip(values.split([3, 1, 3]), mask.split([3, 1, 3]), strict=True)
    )
    torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("mask", "counts", "match"),
    [
        (MASK.float(), COUNTS, "bool"),
        (MASK[:, :3], COUNTS, r"must both be \[B, T\]"),
        (MASK, {**COUNTS, "num_sequences": 1}, "num_sequences=1 is fewer than the 2"),
        (MASK, {**COUNTS, "num_tokens": -1}, "num_tokens=-1"),
        (MASK, {**COUNTS, "max_new_tokens": 0}, "max_new_tokens=0"),
    ],
)
def test_aggregation_bad_input(mask: torch.Tensor, counts: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AGGREGATIONS["token_mean"](VALUES, mask, **counts)


# -- loss types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "aggregation", "epsilon_high"),
    [("grpo", "seq_mean", 0.2), ("dr_grpo", "seq_sum_constant", 0.2), ("dapo", "token_mean", 0.28)],
)
def test_loss_types(name: str, aggregation: str, epsilon_high: float) -> None:
    spec = LOSS_TYPES[name]
    assert (spec.aggregation, spec.default_epsilon_high) == (aggregation, epsilon_high)
    assert spec.paper


def test_the_registry_names_every_aggregation_defined_here() -> None:
    from seele_agents.algos.registry import AGGREGATION_NAMES

    assert tuple(AGGREGATIONS) == AGGREGATION_NAMES
    assert {spec.aggregation for spec in LOSS_TYPES.values()} <= set(AGGREGATIONS)


def test_loss_type_validates_its_aggregation() -> None:
    with pytest.raises(ValueError, match="Did you mean 'token_mean'"):
        LossType("token_means", 0.2, "nowhere")


# -- policy_loss -----------------------------------------------------------------------------------

# Two sequences, T = 3. Sequence 0: generated tokens at t = 0, 1 (t = 2 is padding), A = +1.
# Sequence 1: a hint token at t = 0 (p = 1/4), generated tokens at t = 1, 2, A = -1/2.
# logp = old_logp everywhere (ratio 1), so the surrogate is -A per generated token:
# [-1, -1, pad] and [hint, 1/2, 1/2]. ref_logp differs only at (0, 0) where ref - logp = ln 2,
# so k3 there is 2 - ln 2 - 1 = 0.306853 and 0 elsewhere.
HAND_LOGP = torch.log(torch.tensor([[0.5, 0.5, 1.0], [0.25, 0.5, 0.5]], dtype=torch.float64))
HAND_REF = HAND_LOGP + torch.tensor([[math.log(2), 0, 0], [0, 0, 0]], dtype=torch.float64)
HAND_GEN = torch.tensor([[True, True, False], [False, True, True]])
HAND_HINT = torch.tensor([[False, False, False], [True, False, False]])
HAND_ADV = torch.tensor([1.0, -0.5], dtype=torch.float64)
HAND_COUNTS = {"num_sequences": 2, "num_tokens": 4, "num_hint_tokens": 1, "max_new_tokens": 4}
K3_LN2 = 2 - math.log(2) - 1


@pytest.mark.parametrize(
    ("loss_type", "policy", "kl"),
    [
        ("dr_grpo", -1 / 8, K3_LN2 / 8),  # (-1 - 1 + 1/2 + 1/2) / (2 · 4); KL K3 / 8
        ("grpo", -1 / 4, K3_LN2 / 4),  # (mean(-1, -1) + mean(1/2, 1/2)) / 2; KL (K3/2 + 0) / 2
        ("dapo", -1 / 4, K3_LN2 / 4),  # -1 / 4 tokens; KL K3 / 4
    ],
)
def test_policy_loss_by_hand(loss_type: str, policy: float, kl: float) -> None:
    loss, metrics = policy_loss(
        HAND_LOGP,
        HAND_LOGP,
        HAND_ADV,
        HAND_GEN,
        hint_mask=HAND_HINT,
        ref_logp=HAND_REF,
        loss_type=loss_type,
        beta=0.1,
        gamma=0.01,
        **HAND_COUNTS,
    )
    imitation = math.log(4)  # -log(1/4) over 1 hint token
    total = policy + 0.1 * kl + 0.01 * imitation
    assert set(metrics) == METRIC_KEYS
    assert loss.item() == pytest.approx(total, rel=1e-12)
    expected = {
        "loss/policy": policy,
        "loss/kl": kl,
        "loss/imitation": imitation,
        "loss/total": total,
        "clip/low_fraction": 0.0,
        "clip/high_fraction": 0.0,
        "policy/ratio_mean": 1.0,  # 4 tokens of ratio 1 / 4
    }
    for key, value in metrics.items():
        assert value.ndim == 0 and not value.requires_grad, key
        assert value.item() == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key


def test_policy_loss_clip_metrics_by_hand() -> None:
    # One sequence of 4 generated tokens in a minibatch of 8 tokens, A = +1, ratios
    # [1.5, 1.25, 1.0, 0.5]. dapo (eps_high 0.28): only 1.5 is clipped -> 1/8;
    # grpo (eps_high 0.2): 1.5 and 1.25 -> 2/8. Nothing is low-clipped with A > 0.
    # ratio_mean: (1.5 + 1.25 + 1 + 0.5) / 8 = 0.53125.
    logp = torch.log(torch.tensor([[1.5, 1.25, 1.0, 0.5]]))
    common = {
        "num_sequences": 2,
        "num_tokens": 8,
        "num_hint_tokens": 0,
        "max_new_tokens": 4,
    }
    args = (logp, torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4, dtype=torch.bool))
    for loss_type, eps_high, high in [("dapo", None, 1 / 8), ("grpo", None, 2 / 8)]:
        _, m = policy_loss(*args, loss_type=loss_type, epsilon_high=eps_high, **common)
        assert m["clip/high_fraction"].item() == pytest.approx(high)
        assert m["clip/low_fraction"].item() == 0.0
        assert m["policy/ratio_mean"].item() == pytest.approx(0.53125)
    # An explicit epsilon_high overrides the loss type's default.
    _, m = policy_loss(*args, loss_type="dapo", epsilon_high=0.6, **common)
    assert m["clip/high_fraction"].item() == 0.0
    # A = -1: only 0.5 < 0.8 is low-clipped.
    _, m = policy_loss(*args[:2], torch.tensor([-1.0]), args[3], **common)
    assert (m["clip/low_fraction"].item(), m["clip/high_fraction"].item()) == (1 / 8, 0.0)


def _reference_loss(
    logp: list[list[float]],
    old: list[list[float]],
    ref: list[list[float]],
    adv: list[float],
    gen: list[list[bool]],
    hint: list[list[bool]],
    loss_type: str,
    beta: float,
    gamma: float,
    max_new_tokens: int,
) -> float:
    """The whole loss by plain loops over sequences and tokens, on one (mini)batch."""
    eps_low, eps_high = 0.2, {"grpo": 0.2, "dr_grpo": 0.2, "dapo": 0.28}[loss_type]
    seq_terms, all_tokens, imitation_sum, hint_tokens = [], [], 0.0, 0
    for b in range(len(logp)):
        tokens = []
        for t in range(len(logp[b])):
            if gen[b][t]:
                ratio = math.exp(logp[b][t] - old[b][t])
                clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
                surrogate = -min(ratio * adv[b], clipped * adv[b])
                d = ref[b][t] - logp[b][t]
                tokens.append(surrogate + beta * (math.exp(d) - d - 1))
            if hint[b][t]:
                imitation_sum += logp[b][t]
                hint_tokens += 1
        seq_terms.append(sum(tokens) / len(tokens) if tokens else 0.0)
        all_tokens.extend(tokens)
    if loss_type == "grpo":
        main = sum(seq_terms) / len(logp)
    elif loss_type == "dapo":
        main = sum(all_tokens) / len(all_tokens)
    else:
        main = sum(all_tokens) / (len(logp) * max_new_tokens)
    return main + gamma * (-imitation_sum / hint_tokens)


def _random_batch(seed: int, batch: int = 6, length: int = 7) -> dict:
    gen = torch.Generator().manual_seed(seed)
    logp = -3 * torch.rand(batch, length, generator=gen, dtype=torch.float64)
    old = logp + 0.4 * torch.randn(batch, length, generator=gen, dtype=torch.float64)
    ref = logp + 0.3 * torch.randn(batch, length, generator=gen, dtype=torch.float64)
    kind = torch.randint(0, 3, (batch, length), generator=gen)  # 0 pad, 1 generated, 2 hint
    kind[:, 1] = 1  # every sequence generates at least one token
    kind[0, 0] = 2  # and there is at least one hint token
    return {
        "logp": logp,
        "old_logp": old,
        "ref_logp": ref,
        "advantages": torch.randn(batch, generator=gen, dtype=torch.float64),
        "gen_mask": kind == 1,
        "hint_mask": kind == 2,
    }


def _call(batch: dict, counts: dict, **kwargs: object) -> tuple[torch.Tensor, dict]:
    b = dict(batch)
    positional = (b.pop("logp"), b.pop("old_logp"), b.pop("advantages"), b.pop("gen_mask"))
    return policy_loss(*positional, **b, **counts, **kwargs)


def _counts(batch: dict, max_new_tokens: int = 7) -> dict:
    return {
        "num_sequences": batch["logp"].shape[0],
        "num_tokens": int(batch["gen_mask"].sum()),
        "num_hint_tokens": int(batch["hint_mask"].sum()),
        "max_new_tokens": max_new_tokens,
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_policy_loss_matches_plain_python_loops(seed: int, loss_type: str) -> None:
    batch = _random_batch(seed)
    loss, _ = _call(batch, _counts(batch), loss_type=loss_type, beta=0.05, gamma=0.02)
    expected = _reference_loss(
        batch["logp"].tolist(),
        batch["old_logp"].tolist(),
        batch["ref_logp"].tolist(),
        batch["advantages"].tolist(),
        batch["gen_mask"].tolist(),
        batch["hint_mask"].tolist(),
        loss_type,
        beta=0.05,
        gamma=0.02,
        max_new_tokens=7,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_micro_batches_sum_to_the_minibatch(loss_type: str) -> None:
    batch = _random_batch(seed=5, batch=7)
    counts = _counts(batch)  # whole-minibatch counts, used by every micro-batch
    kwargs = {"loss_type": loss_type, "beta": 0.05, "gamma": 0.02}

    whole_logp = batch["logp"].clone().requires_grad_()
    whole_loss, whole_metrics = _call({**batch, "logp": whole_logp}, counts, **kwargs)
    whole_loss.backward()

    sizes = [3, 1, 3]
    split = {key: value.split(sizes) for key, value in batch.items()}
    micro = [{key: parts[i] for key, parts in split.items()} for i in range(len(sizes))]
    part_loss, part_metrics, grads = 0.0, dict.fromkeys(METRIC_KEYS, 0.0), []
    for part in micro:
        logp = part["logp"].clone().requires_grad_()
        loss, metrics = _call({**part, "logp": logp}, counts, **kwargs)
        loss.backward()  # accumulate as a trainer would
        grads.append(logp.grad)
        part_loss += loss.item()
        for key, value in metrics.items():
            part_metrics[key] += value.item()

    assert part_loss == pytest.approx(whole_loss.item(), rel=1e-12)
    for key in METRIC_KEYS:
        assert part_metrics[key] == pytest.approx(whole_metrics[key].item(), rel=1e-12), key
    torch.testing.assert_close(torch.cat(grads), whole_logp.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss_type", sorted(LOSS_TYPES))
def test_hint_tokens_get_only_the_imitation_gradient(loss_type: str) -> None:
    batch = _random_batch(seed=3)
    counts = _counts(batch)
    hint, gen = batch["hint_mask"], batch["gen_mask"]
    pad = ~(hint | gen)

    grads = {}
    for gamma in (0.0, 0.3):
        logp = batch["logp"].clone().requires_grad_()
        loss, _ = _call({**batch, "logp": logp}, counts, loss_type=loss_type, beta=0.1, gamma=gamma)
        loss.backward()
        grads[gamma] = logp.grad

    # Surrogate + KL alone (gamma = 0): exactly no gradient at hint or padding positions.
    assert torch.equal(grads[0.0][hint | pad], torch.zeros(int((hint | pad).sum()), dtype=float))
    # With gamma: d/dlogp of -gamma · Σ_hint logp / num_hint_tokens = -gamma / num_hint_tokens.
    expected = torch.full((int(hint.sum()),), -0.3 / counts["num_hint_tokens"], dtype=float)
    torch.testing.assert_close(grads[0.3][hint], expected, rtol=1e-15, atol=0)
    # gamma leaves generated and padding positions alone.
    assert torch.equal(grads[0.3][gen | pad], grads[0.0][gen | pad])


def test_non_finite_values_outside_the_masks_do_not_leak() -> None:
    batch = _random_batch(seed=4)
    counts = _counts(batch)
    pad = ~(batch["gen_mask"] | batch["hint_mask"])
    reference, _ = _call(batch, counts, beta=0.1, gamma=0.1)
    poisoned = {
        **batch,
        "logp": batch["logp"].masked_fill(pad, math.nan).requires_grad_(),
        # the sampler never scored hint tokens: old/ref log-probs there may be anything
        "old_logp": batch["old_logp"].masked_fill(~batch["gen_mask"], -math.inf),
        "ref_logp": batch["ref_logp"].masked_fill(~batch["gen_mask"], math.nan),
    }
    loss, metrics = _call(poisoned, counts, beta=0.1, gamma=0.1)
    loss.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert torch.isfinite(poisoned["logp"].grad).all()
    assert (poisoned["logp"].grad[pad] == 0).all()


def test_kl_and_imitation_switches() -> None:
    batch = _random_batch(seed=6)
    counts = _counts(batch)
    base, base_m = _call({**batch, "ref_logp": None}, counts, beta=0.5, gamma=0.0)
    assert base_m["loss/kl"].item() == 0.0  # no reference model, no KL
    assert base.item() == pytest.approx(base_m["loss/policy"].item(), rel=1e-12)
    # beta = 0 with a reference: the KL is still reported, but adds nothing to the loss.
    loss, m = _call(batch, counts, beta=0.0, gamma=0.0)
    assert m["loss/kl"].item() > 0 and loss.item() == pytest.approx(base.item(), rel=1e-12)
    # No hint tokens in the whole minibatch: imitation is 0, not 0/0.
    no_hint = {**batch, "hint_mask": None}
    _, m = _call(no_hint, {**counts, "num_hint_tokens": 0}, gamma=1.0)
    assert m["loss/imitation"].item() == 0.0


_B = _random_batch(seed=7, batch=2, length=3)
_C = _counts(_B)


@pytest.mark.parametrize(
    ("change", "counts", "kwargs", "match"),
    [
        ({}, _C, {"loss_type": "dr-grpo"}, "Did you mean 'dr_grpo'"),
        ({}, _C, {"loss_type": "dapo2"}, "Did you mean 'dapo'"),
        ({}, _C, {"epsilon_low": 0.0}, "epsilon_low=0.0"),
        ({}, _C, {"epsilon_low": 1.0}, "epsilon_low=1.0"),
        ({}, _C, {"epsilon_high": -0.1}, "epsilon_high=-0.1"),
        ({}, _C, {"beta": -1.0}, "beta=-1.0"),
        ({}, _C, {"gamma": -0.5}, "gamma=-0.5"),
        ({}, {**_C, "num_hint_tokens": -1}, {}, "num_hint_tokens=-1"),
        ({}, {**_C, "num_sequences": 1}, {}, "num_sequences=1"),
        ({"old_logp": _B["old_logp"][:, :2]}, _C, {}, r"old_logp has shape \(2, 2\)"),
        ({"ref_logp": _B["ref_logp"][:1]}, _C, {}, r"ref_logp has shape \(1, 3\)"),
        ({"gen_mask": _B["gen_mask"].float()}, _C, {}, "gen_mask has dtype torch.float32"),
        ({"hint_mask": _B["hint_mask"].long()}, _C, {}, "hint_mask has dtype torch.int64"),
        ({"hint_mask": _B["gen_mask"]}, _C, {}, "overlap"),
        ({"advantages": _B["advantages"][:, None]}, _C, {}, r"advantages has shape \(2, 1\)"),
        ({"logp": _B["logp"][0]}, _C, {}, r"logp has shape \(3,\)"),
    ],
)
def test_policy_loss_bad_input(change: dict, counts: dict, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _call({**_B, **change}, counts, **kwargs)
