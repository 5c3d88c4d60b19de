"""The registries of learners and loss types: what the config accepts, what the factory builds."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

from seele_agents.algos.grpo import GRPOLearner  # noqa: E402
from seele_agents.algos.learner import PolicyLearner, Targets  # noqa: E402
from seele_agents.algos.ppo import PPOLearner  # noqa: E402
from seele_agents.algos.registry import (  # noqa: E402
    LEARNERS,
    LOSS_TYPES,
    learner_class,
    register_learner,
)
from seele_agents.config import ConfigError, config_reference, load_config  # noqa: E402
from seele_agents.models.tiny import TinyConfig, build_tiny  # noqa: E402
from seele_agents.training.build import make_learner  # noqa: E402


class MeanBaseline(PolicyLearner):
    """REINFORCE with the batch's mean reward as the baseline: a user's own learner."""

    name = "mean_baseline"

    def __init__(self, *args, discount: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.discount = discount

    def prepare(self, batch, ids, attn, gen):
        rewards = batch.rewards.to(ids.device)
        return Targets(rewards - rewards.mean())


@pytest.fixture
def mean_baseline():
    """A learner registered by a user for the length of a test."""
    register_learner(
        "mean_baseline", f"{__name__}:MeanBaseline", "REINFORCE, batch-mean baseline",
        options=("discount",),
    )  # fmt: skip
    yield
    del LEARNERS["mean_baseline"]


def test_the_config_offers_exactly_the_registered_learners_and_loss_types() -> None:
    reference = config_reference()
    for name, spec in LEARNERS.items():
        assert f"{name} ({spec.summary})" in reference
    assert "Choices: `grpo`, `ppo`, `reinforcepp`." in reference
    assert "Choices: `grpo`, `dr_grpo`, `dapo`." in reference
    assert "(grpo 0.2, dr_grpo 0.2, dapo 0.28)" in reference  # epsilon_high's defaults
    for loss, spec in LOSS_TYPES.items():
        config = load_config(None, [f"algo.loss={loss}"])
        assert config.algo.resolved_epsilon_high == spec.default_epsilon_high
    with pytest.raises(ConfigError, match=r"'ppp' is not one of \['grpo', 'ppo', 'reinforcepp'\]"):
        load_config(None, ["algo.name=ppp"])


def test_a_learner_registered_later_is_a_valid_algo_name(mean_baseline) -> None:
    config = load_config(None, ["algo.name=mean_baseline", "algo.discount=0.5"])
    assert config.algo.name == "mean_baseline"
    assert learner_class("mean_baseline") is MeanBaseline


def test_registration_errors() -> None:
    with pytest.raises(ValueError, match=r"learner 'grpo' is already registered"):
        register_learner("grpo", "seele_agents.algos.grpo:GRPOLearner", "again")
    with pytest.raises(ValueError, match=r"write it as 'package.module:ClassName'"):
        register_learner("mine", "seele_agents.algos.grpo.GRPOLearner", "no colon")
    assert "mine" not in LEARNERS
    with pytest.raises(ValueError, match=r"Unknown learner 'grp'.*Did you mean 'grpo'"):
        learner_class("grp")


def test_make_learner_builds_the_registered_class_with_its_options(mean_baseline) -> None:
    model, _ = build_tiny(seed=0, config=TinyConfig(hidden_size=16, intermediate_size=32,
                                                    num_layers=1, num_heads=2))  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = load_config(None, ["algo.name=mean_baseline", "algo.discount=0.5"])
    learner = make_learner(config, model, optimizer)
    assert type(learner) is MeanBaseline and learner.discount == 0.5
    config = load_config(None, ["algo.advantage=grpo", "algo.baseline=round"])
    learner = make_learner(config, model, optimizer)
    assert type(learner) is GRPOLearner
    assert (learner.advantage, learner.baseline) == ("grpo", "round")
    config = load_config(None, ["algo.name=ppo", "algo.value_coef=0.3", "algo.gae_lambda=0.9"])
    learner = make_learner(config, model, optimizer)  # no head given: PPO makes its own
    assert type(learner) is PPOLearner and learner.value_head is not None
    assert (learner.value_coef, learner.gae_lambda) == (0.3, 0.9)
